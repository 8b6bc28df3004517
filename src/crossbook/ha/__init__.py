"""High availability: the service on a JetStream log, leader lease, hot standby."""

from crossbook.ha.journal import JetStreamJournal
from crossbook.ha.leader import Leadership, Standby, open_leader

__all__ = ["JetStreamJournal", "Leadership", "Standby", "open_leader"]
