"""Layout stage: where every value of a sealed object sits, so any value has an address.

* :mod:`.ordkeys` - order-preserving unsigned keys for every column type
* :mod:`.bitpack` - fixed-width bit packing that keeps every value addressable
* :mod:`.object_layout` - sub-columns laid out over k equal data fragments (``plan_layout``,
  ``ObjectLayout``, ``SubColumn``)
"""
