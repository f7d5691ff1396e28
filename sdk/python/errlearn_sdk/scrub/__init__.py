"""Secret scrubbing: replace credentials and personal data in error events with ``[REDACTED:<kind>]``.

It runs on every ingested event before anything is stored, embedded or sent to a model, and in the SDK
before an event leaves the process, so clean text must be cheap. Every detector therefore starts with a
literal (``://``, ``eyJ``, ``ghp_`` ...) that ``re`` skips to with its fast prefix search; a pattern that starts
with a character class makes ``re`` try a full match at nearly every position, several times slower.
``key=value`` pairs are found by scanning the reversed, lower-cased text for ``=`` and ``:`` followed by a
reversed key word, card numbers by scanning a digit mask of the text for ``0000``.

Rules worth knowing (the tests pin them down):

- ``key=value``: the key must *end* with a sensitive word (``db_password``, ``X-Api-Key``, ``GITHUB_TOKEN``;
  not ``tokenizer`` or ``token_count``). The value is kept when it cannot be a secret: booleans and null,
  integers of at most three digits, status words (``missing``, ``expired``), empty values, masks (``***``),
  references (``${DB_PASSWORD}``, ``%s``, ``<password>``), paths, type names (``password: str``), code
  (``token = get_token(...)``), a bare word after a quoted key (``"db-secret" : secret``) and, in prose
  (``Invalid token: abc``: a bare key mid-line, then ``:``), values that do not look random (no digit and
  shorter than 20). ``--password <value>`` is a flag; ``-p<value>`` is not (``-p`` is a port or a profile
  for most tools). A ``Cookie:`` header is redacted to the end of its line.
- Card numbers: 13-16 plain digits, or 13-19 grouped 4-4-4-4(-3) / 4-6-5 / 4-6-4 by one kind of separator,
  with an issuer prefix (2221-2720, 3, 4, 5, 6) of a matching length and a valid Luhn checksum, not glued to a
  word, a minus sign or a decimal point.
- ``data()`` replaces containers nested deeper than 32 levels (or cyclic) with ``[REDACTED:too_deep]``,
  so that a hostile payload or a self-referencing object from the SDK cannot exhaust the stack.
- Placeholders never match again, and a text with a redaction gets another round until nothing changes, so

The package: ``rules`` holds the table of patterns and words, ``detectors`` the shape detectors, ``keyvalue``
the ``key=value`` scanner and ``scrubber`` the :class:`Scrubber` that runs them.
"""

from errlearn_sdk.scrub.rules import KINDS
from errlearn_sdk.scrub.scrubber import Scrubber

__all__ = ["KINDS", "Scrubber"]
