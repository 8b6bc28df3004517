"""Golden scenarios for the matching engine: book before, command, events, book after."""
