"""The pyckpt command-line tool."""


def main(argv=None):
    return 0
