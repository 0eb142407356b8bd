"""The `vampkeras` command line (installed as the package ``vampkeras_cli``)."""
