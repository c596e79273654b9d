"""Test fixture operator (never imported by descriptor checks)."""


class Clean:
    def __call__(self, row):
        return row
