"""Fixture sink in the Zenoh-Flow Python shape."""


class Sink:
    def run(self, value):
        print(value)


def register():
    return Sink
