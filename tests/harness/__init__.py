"""deltacheck's harness: the engine the suite runs on.

Hypothesis strategies for networks (``strategies``), the error model that bounds how far
a correct dtype computation may sit from the reference (``error_model``,
``error_model_higher``, ``error_model_online``, on ``bounded_arithmetic``), the one
comparison helper (``compare``), the searches (``crossval``, ``crossval_higher``), known
discrepancies (``known``, ``known_errors``, with their reproducers in ``reproducer_cases``
and ``reproducers``), what a run recorded (``results``), reproducer scripts (``repro``,
``repro_higher``), target selection (``selection``), the pytest plugins (``plugin``,
``report_plugin``, sharing the run's ``state``) and the report (``report_data``,
``report``, ``report_plots``, ``training_plots``, ``matrix``).  The tests that use it live
in ``tests/suite`` (what users run against frameworks) and ``tests/meta`` (the suite's
self-tests).
"""
