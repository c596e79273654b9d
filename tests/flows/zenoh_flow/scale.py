"""Fixture node in the Zenoh-Flow Python shape (never imported by descriptor checks)."""


class Scale:
    def run(self, value):
        return value * 2


def register():
    return Scale
