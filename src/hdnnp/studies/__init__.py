"""Convergence studies (thesis ch. 3–4): sweeps of training runs and their reports.

* :mod:`hdnnp.studies.spec` — what a study is (base configuration, varied keys, seeds);
* :mod:`hdnnp.studies.runner` — running it, N processes at a time or on dask, resumable;
* :mod:`hdnnp.studies.report` — loss curves, error against the parameter, table, choice;
* :mod:`hdnnp.studies.presets` — the thesis's studies on the bundled graphene set;
* :mod:`hdnnp.studies.h2` — the H2-dimer toy model of §4.1.2.

``hdnnp study`` is the command line (``docs/studies.md``).
"""
