"""``python -m sandglass``: the same as the ``sandglass`` command."""

from sandglass.cli import app

if __name__ == "__main__":
    app(prog_name="sandglass")
