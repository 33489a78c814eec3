"""The one exception type that stage scripts turn into a one-line error."""


class UserError(Exception):
    """Bad input from the user (params, data, files): reported as one line, exit 2.

    The message must name the file/key/row, the bad value and what is allowed.
    """
