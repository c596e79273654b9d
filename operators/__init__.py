"""The built-in operator library: one module per operator, run by the node host.

The names a descriptor uses (``operator: window``) and their ``"module:attr"`` strings are
registered in :mod:`zflow.dataflow.builtins`, so the descriptor layer never imports this
package; each module's docstring lists its configuration keys and ports, and
:mod:`operators.configs` holds their configuration models.
"""
