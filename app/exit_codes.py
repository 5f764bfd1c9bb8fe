"""What every `fastslow` command (and the app's launcher) exits with, said once."""

EXIT_OK = 0
EXIT_RUN_FAILED = 1  # a run failed (a model that did not load, a run that failed)
EXIT_BAD_INPUT = 2  # the input was refused (a flag, a file, a model that does not fit): nothing ran
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT
