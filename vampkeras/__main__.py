"""`python -m vampkeras`: the same commands as the `vampkeras` console script."""

from vampkeras_cli.main import main

if __name__ == "__main__":
    main()
