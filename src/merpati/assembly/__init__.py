"""The composition root's parts: one module per service family, each wiring its listeners or
background work from an ``AppContext``. ``app.run`` starts every part in ``PARTS`` and stops them
in reverse order. A part declares which ``[listen]`` entries it serves in ``LISTENERS`` (only once
they are implemented: ``app.check_config`` refuses a configured listener nobody serves)."""
