"""Drop faulty mote readings (descriptor example: what `operator: ./nodes/clean.py:clean` names)."""


def clean(row: dict) -> dict | None:
    temperature = row.get("temperature")
    if temperature is None or not -10.0 <= temperature <= 60.0:
        return None
    return row
