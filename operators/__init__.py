"""Built-in operators, by the name a descriptor uses in ``operator:``.

Each entry maps a name to ``module:attribute``; modules are imported only when a flow uses them.
"""

BUILTINS: dict[str, str] = {
    "zenoh-subscribe": "operators.zenoh_bridge:ZenohSubscribe",
    "zenoh-publish": "operators.zenoh_bridge:ZenohPublish",
}
