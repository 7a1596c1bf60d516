"""`python -m kgen`: the `kgen` command."""

from kgen.cli.main import main

if __name__ == "__main__":
    main()
