"""The thesis as a command: ``hdnnp reproduce MATERIAL`` (:mod:`hdnnp.reproduce.pipeline`)."""
