"""The native WebSocket: market streams, private events after login, and
cancel-on-disconnect."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import websockets

from tests.gateway.conftest import Server
from tests.gateway.deployments import every_deployment  # noqa: F401 (all three)
from tests.gateway.test_native_api import Native


def login_message(user: dict[str, str], cancel_on_disconnect: bool) -> str:
    params = {"apiKey": user["apiKey"], "timestamp": int(time.time() * 1000)}
    if cancel_on_disconnect:
        params["cancelOnDisconnect"] = "true"
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params))
    params["signature"] = hmac.new(
        user["secret"].encode(), payload.encode(), hashlib.sha256
    ).hexdigest()
    return json.dumps({"id": 1, "method": "login", "params": params})


def test_session_with_cancel_on_disconnect_cancels_its_orders(server: Server) -> None:
    alice = Native(server, server.users[0])

    async def scenario() -> int:
        async with websockets.connect(f"{server.ws_url}/v1/ws") as ws:
            await ws.send(login_message(server.users[0], cancel_on_disconnect=True))
            reply = json.loads(await ws.recv())
            assert reply["status"] == 200, reply
            order = await asyncio.to_thread(
                alice.call, "POST", "/v1/orders",
                {"market": "ETHUSDT", "side": "sell", "price": "9999.00", "quantity": "0.5000"},
            )  # fmt: skip
            oid = order.json()["order_id"]
            # the private stream reports the new order
            for _ in range(10):
                event = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if event.get("e") == "executionReport" and event["i"] == oid:
                    break
            else:
                raise AssertionError("no executionReport for the new order")
        return int(oid)

    oid = asyncio.run(scenario())
    for _ in range(50):
        status = alice.call("GET", f"/v1/orders/ETHUSDT/{oid}").json()["status"]
        if status == "cancelled":
            break
        time.sleep(0.1)
    assert status == "cancelled"


def test_login_with_a_bad_signature_is_refused(server: Server) -> None:
    async def scenario() -> dict[str, object]:
        async with websockets.connect(f"{server.ws_url}/v1/ws") as ws:
            user = dict(server.users[1])
            user["secret"] = "x" * 64
            await ws.send(login_message(user, cancel_on_disconnect=False))
            return dict(json.loads(await ws.recv()))

    reply = asyncio.run(scenario())
    assert reply["status"] != 200 and reply["error"]["code"] == -1022


def test_market_streams_on_the_native_socket(server: Server) -> None:
    alice = Native(server, server.users[0])

    async def scenario() -> dict[str, object]:
        async with websockets.connect(f"{server.ws_url}/v1/ws") as ws:
            await ws.send(
                json.dumps({"method": "SUBSCRIBE", "params": ["ethusdt@depth@100ms"], "id": 7})
            )
            assert json.loads(await ws.recv()) == {"result": None, "id": 7}
            await asyncio.to_thread(
                alice.call, "POST", "/v1/orders",
                {"market": "ETHUSDT", "side": "buy", "price": "1000.00", "quantity": "0.5000"},
            )  # fmt: skip
            # earlier changes to the book may still arrive first: wait for ours
            for _ in range(20):
                message = dict(json.loads(await asyncio.wait_for(ws.recv(), 5)))
                if ["1000.00", "0.500000000000000000"] in message["data"]["b"]:
                    return message
            raise AssertionError("the new bid never reached the depth stream")

    message = asyncio.run(scenario())
    assert message["stream"] == "ethusdt@depth@100ms"
    alice.call("DELETE", "/v1/orders", query="market=ETHUSDT")


def test_ws_api_request_with_params_that_are_not_an_object_is_answered(server: Server) -> None:
    async def scenario() -> list[dict[str, object]]:
        async with websockets.connect(f"{server.ws_url}/ws-api/v3") as ws:
            replies = []
            for params in ('"x"', "[1]"):
                await ws.send(
                    f'{{"id": "1", "method": "userDataStream.subscribe.signature", "params": {params}}}'
                )
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            await ws.send('{"id": "2", "method": "ping"}')
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            return replies

    bad1, bad2, pong = asyncio.run(scenario())
    assert bad1["status"] == 400 and bad2["status"] == 400
    assert pong["status"] == 200  # the connection survived
