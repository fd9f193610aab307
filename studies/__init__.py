"""Protocols a person runs, and the ``tissue`` command line.

- :mod:`studies.config`: run configurations in TOML, validated into typed objects
  (:func:`~studies.config.load_config`, :class:`~studies.config.ConfigError`);
- :mod:`studies.run`: the run protocol with resume (:func:`studies.run.run`): settle runs, and
  learning runs (:mod:`studies.learn`) for configs with ``[learning]``;
- :mod:`studies.tasks`, :mod:`studies.baselines`: the digits and pattern tasks, their input map,
  and the backprop references;
- :mod:`studies.sweep`: grids of runs on ``dask.distributed`` (``tissue sweep``);
- :mod:`studies.demo`: the showcase (:func:`studies.demo.run_demo`);
- :mod:`studies.cli`: ``tissue run | sweep | info | demo | check``.

    >>> from studies import load_config
    >>> from studies.run import run
    >>> cfg = load_config("configs/demo.toml")
    >>> summary = run(cfg, "demo.zarr")                      # doctest: +SKIP

The protocols import the engine (Numba) and are imported on use, so that
validating a config stays quick.
"""

from .config import ConfigError, RunConfig, load_config, to_toml

__all__ = ["ConfigError", "RunConfig", "load_config", "to_toml"]
