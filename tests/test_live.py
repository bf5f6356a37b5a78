"""Retained changes reach the console's channel-layer group after commit."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from console import live
from retained import store
from retained.models import SetByKind

ACTOR = store.Actor(kind=SetByKind.CONSOLE, name="tester")


@pytest.mark.django_db(transaction=True)
def test_store_writes_arrive_in_the_retained_group() -> None:
    async def scenario() -> list[dict[str, object]]:
        layer = get_channel_layer()
        assert layer is not None
        channel = await layer.new_channel()
        await layer.group_add(live.RETAINED_GROUP, channel)
        undo = live.install(asyncio.get_running_loop())
        try:
            await sync_to_async(store.set_retained)("live/a", b"1", qos=1, actor=ACTOR)
            await sync_to_async(store.clear_retained)("live/a", actor=ACTOR)
            received: list[dict[str, object]] = []
            while len(received) < 2:
                async with asyncio.timeout(2):
                    message = await layer.receive(channel)
                assert message["type"] == "retained.changed.batch"
                received += message["events"]
            return received
        finally:
            undo()

    received = asyncio.run(scenario())
    assert [(m["type"], m["topic"], m["change"]) for m in received] == [
        ("retained.changed", "live/a", "set"),
        ("retained.changed", "live/a", "cleared"),
    ]
    assert received[0]["payload_size"] == 1
