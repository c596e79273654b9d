"""Misbehaving nodes for the QA tests."""

import time

import zflow


@zflow.source
def three(ctx):
    yield from ({"i": i} for i in range(3))


class TeardownHangs(zflow.Sink):
    def on_input(self, port, value, ctx):
        pass

    def teardown(self, ctx):
        time.sleep(3600)


class TeardownFails(zflow.Sink):
    def on_input(self, port, value, ctx):
        pass

    def teardown(self, ctx):
        raise RuntimeError("teardown boom")


class SlowSetup(zflow.Sink):
    def setup(self, ctx):
        time.sleep(float(ctx.config.get("seconds", 30)))

    def on_input(self, port, value, ctx):
        pass


@zflow.sink
def drop(value, ctx):
    pass


@zflow.operator
def echo(value, ctx):
    return value
