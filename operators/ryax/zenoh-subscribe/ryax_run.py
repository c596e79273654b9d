"""Start a run for every sample on a Zenoh key expression."""

import asyncio
import os

import zenoh


async def run(service, input_values: dict) -> None:
    connect = input_values.get("connect") or os.environ.get("ZFLOW_CONNECT", "")
    conf = zenoh.Config()
    conf.insert_json5("mode", '"client"')
    conf.insert_json5("scouting/multicast/enabled", "false")
    if connect:
        endpoints = ",".join(f'"{c}"' for c in connect.split(",") if c)
        conf.insert_json5("connect/endpoints", f"[{endpoints}]")
    session = zenoh.open(conf)
    try:
        sub = session.declare_subscriber(input_values["key_expr"], zenoh.handlers.FifoChannel(1024))
        while True:
            sample = await asyncio.to_thread(sub.recv)
            text = sample.payload.to_bytes().decode("utf-8", errors="replace")
            await service.create_run({"key": str(sample.key_expr), "payload": text})
    finally:
        session.close()
