"""Models held in memory: the device and dtype they run in, their load sequence through the
store, who is using them, and the memory budget that unloads them."""
