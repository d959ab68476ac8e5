"""``python -m hybrid_search``: the ``hybrid-search`` program."""

from .cli_entry import main

if __name__ == "__main__":
    main()
