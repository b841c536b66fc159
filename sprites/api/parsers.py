"""DRF's JSON parser, but JSON nested past Python's recursion limit is the client's 400."""

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:  # the json module's answer to absurd nesting
            raise ParseError("JSON parse error - nested too deeply.") from None
