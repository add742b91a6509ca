"""Does an agent's reply say it cannot find the caller's record?

Deterministic and pattern based (see docs/grading.md for why not a classifier): a reply is
cut into clauses; a clause is a refusal when a negation governs a verb of looking up
(find, locate, pull up, see, show, have, match, appear, exist, come up, ...) whose object
is a record, a name, or "you"/"anything" placed somewhere records live ("in our system",
"under that name", "on file"), or when it states an empty result ("nothing's coming up",
"no match", "came back empty"). Availability ("no openings", "nothing earlier"), other
negations ("I can't wait", "no problem") and conditionals ("if I can't find it") are not
refusals, and a later "but I found it" withdraws one.
"""

from __future__ import annotations

import functools
import re

from simulator.slots import fold

# ---------------------------------------------------------------------------- vocabulary

# Nouns naming a record (or a search result) an agent looks up.
_RECORD = (
    r"records?|files?|charts?|accounts?|appointments?|bookings?|reservations?|listings?"
    r"|propert(?:y|ies)|homes?|houses?|condos?|units?|profiles?|patients?|clients?"
    r"|tenants?|tenancy|customers?|members?|leases?|entry|entries|match(?:es)?|results?"
    r"|hits?|registration|visits?|orders?|tickets?|cases?|ids?|numbers?|address(?:es)?"
    r"|names?|anything|anyone|anybody|one|a thing"
)
# Pronouns that stand for the record (or the caller) being looked up.
_PRONOUN = r"you|yourself|it|that|this|them|him|her|that one|this one"
# Where records live: "in our system", "on file", "on my end".
_PLACE = (
    r"system|systems|records?|database|databases|files?|books|lists?|directory|calendar"
    r"|schedule|inventory|listings|roster|register|computer|end|side|charts?|logs?|portal"
)
_CUE = re.compile(
    rf"\b(?:in|on|from|within) (?:our|the|my|your|this)?\s*(?:[\w-]+ ){{0,2}}(?:{_PLACE})\b"
    r"|\bon (?:file|record)\b|\bunder\b|\bnamed\b"
    r"|\bby (?:that|the|this) (?:name|address|number|phone|id)\b"
    r"|\bwith (?:that|those|this|the) (?:name|number|phone|details|information|birthday"
    r"|date|address|id|info)"
    r"|\bmatching\b|\bthat match(?:es)?\b|\bat (?:that|this|the) address\b|\bat \d"
    r"|\bfor (?:that|this|the) (?:name|number|address|phone|id|listing|date)"
    r"|\bfor (?:you|your)\b|\bfor (?:a |an )?(?-i:[A-Z][a-z])"
    r"|\blisted\b|\bregistered\b|\bscheduled\b|\bbooked\b|\btied to\b|\bassociated with\b"
    r"|\blinked to\b|\bwith us\b|\bwith (?:the )?(?:information|details)\b"
    r"|\bas (?:a|an) (?:patient|client|tenant|customer|member|resident)\b|\bin (?:here|there)\b",
    re.I,
)
# Objects that make a negated look-up about something other than the caller's record:
# availability ("no earlier openings"), reasons, people to send.
_NOT_RECORD = re.compile(
    r"\b(?:openings?|availability|available|slots?|spots?|times?|earlier|later|sooner"
    r"|open|other|another|second|additional|more|extra|else|new|reasons?|problems?"
    r"|issues?|notes?|fees?|tax(?:es)?|words|way|parking|changes?|charges?|difference"
    r"|need|why|how|what|whether|where|when|wrong)\b",
    re.I,
)
_NEG = r"\b(?:not|never|unable to|failed to|no longer)"
# Words that may stand between a negation and its verb: "not (seem to be able to) find".
_FILL = (
    r"(?:\s+(?:seem|seems|seemed|appear|appears|really|actually|quite|still|yet|even"
    r"|currently|to|be|been|being|able|ever|immediately|exactly|at all))*"
)
_SEARCH = (
    r"find|finding|found|locate|locating|located|pull(?:ing)?(?: [\w-]+){0,2} up"
    r"|bring(?:ing)?(?: [\w-]+){0,2} up|track(?:ing)?(?: [\w-]+)? down"
    r"|turn(?:ing|ed)?(?: [\w-]+)? up|retrieve|retrieving|verify|verifying"
    r"|look(?:ing)?(?: [\w-]+)? up|get|getting|got|identify"
)
_SEE = (
    r"see|seeing|show|shows|showing|list|lists|include|includes|return|returns|returning"
    r"|returned|have|has|having|hold|holds|contain|contains|containing|carry|carries"
    r"|recogni[sz]e"
)
_MATCH = (
    r"match|matches|matching|ring(?:ing)? (?:a|any) bells?|correspond(?:s|ing)? to"
    r"|lines? up with|(?:associated|tied|linked|connected|attached) (?:with|to)"
    r"|belong(?:s|ing)? to"
)
_BE_SOMEWHERE = (
    rf"(?:appear|appearing|exist|exists|existed|existing|show(?:ing)? up|come up|coming up"
    rf"|pop(?:ping)? up|turn(?:ing)? up|register(?:ed)?|listed|on file|on record|a valid|valid"
    rf"|one of (?:ours|our)|(?:in|on|within) (?:our|the|my)\s*(?:[\w-]+ ){{0,2}}(?:{_PLACE})"
    rf"|(?:a|an) (?:registered|current|existing|active|valid) (?:{_RECORD})"
    rf"|(?:a|an|one) (?:[\w-]+ )?(?:{_RECORD}|one) (?:that )?(?:we|i) (?:have|carry|list|handle"
    rf"|represent|manage|know of|recogni[sz]e|see))\b"
)
_NEGATED = re.compile(
    rf"{_NEG}{_FILL}\s+(?:(?P<be>{_BE_SOMEWHERE})|(?P<search>{_SEARCH})|(?P<see>{_SEE})"
    rf"|(?P<match>{_MATCH}))\b(?P<rest>.*)",
    re.I,
)
# Empty results, said without a negated verb.
_EMPTY = re.compile(
    rf"\bno (?:[\w-]+ ){{0,2}}?(?:records?|match(?:es)?|results?|hits?|luck)\b"
    rf"|\bzero (?:match(?:es)?|results?|hits|records)\b"
    rf"|\bno such (?:{_RECORD})\b|\bno (?:trace|sign) of\b|\bno dice\b"
    rf"|\b(?:came|comes|coming|come) (?:back|up) (?:empty|with nothing|blank|dry|short)"
    rf"|\b(?:turn(?:ed|s|ing)?|came|come|coming) up (?:empty|nothing|dry)\b"
    rf"|\bdr(?:aw|ew|aws|awing) a blank\b"
    rf"|\b(?:brings?|brought|bringing|pulls?|pulled|pulling|turns?|turned|returns?|returned"
    rf"|finds?|found|shows?|showed|showing|gets?|got|getting|came back with|comes back with)"
    rf" (?:up )?nothing\b"
    rf"|\bnothing (?:is |was |has |has been )?(?:coming up|came up|comes up|come up|showing"
    rf"|showed|shows|turned up|turns up|matches|matched|match|under|on the books|in our"
    rf"|in the system|at that|for that|for this|for you|for the|for a|for your|booked"
    rf"|scheduled|listed|on file|on record|on my end|on our end|pops up|popped up|popping up"
    rf"|there|by that|by the name|matching|with that|with those|registered)\b"
    rf"|\b(?:trouble|difficulty|a hard time|no luck|any luck) (?:finding|locating|pulling"
    rf"|tracking|bringing|getting)\b"
    rf"|\bno (?:[\w-]+ ){{0,3}}?(?:{_RECORD}|(?-i:[A-Z][a-z]+))\b(?P<nocue>.*)",
    re.I,
)
# "there's no X under that name", "we have no X on file", "nobody by that name".
_NONE_THERE = re.compile(
    r"\b(?:there is|there are|there was|there were|we have|i have|shows?|showed|returned"
    r"|has|we got|i got|there is not|there are not|there was not)"
    r" (?:no|not an?|not any|not anything|not anyone|not anybody|nobody|no one|none)\b"
    r"(?P<rest>.*)"
    r"|\b(?:nobody|no one|none of)\b(?P<rest2>.*)",
    re.I,
)
_FOUND = re.compile(
    r"(?<!not )\b(?:found (?:it|you|your|the|them|him|her)|here it is|there it is|got it"
    r"|it is (?:right )?there|i (?:can )?see it|located (?:it|you|your)|i have it right"
    r"|pulled (?:it|you|your \w+) up|there you are|here you are|it (?:just )?came up"
    r"|it is showing)\b",
    re.I,
)
_CONDITIONAL = re.compile(r"\b(?:if|unless|in case|whether|until|once)\b[^,.;!?]*", re.I)
_FIRST_TRY = re.compile(r"\b(?:at first|initially|the first time|a moment ago)\b", re.I)
# "It does not look like we have X listed" -> "we do not have X listed".
_LOOKS_LIKE = re.compile(
    r"\b(?:it )?(?:does|do|did) not (?:look|seem|appear|sound) (?:like|as if|as though|that) "
    r"(?P<subj>we|you|i|they|it|there|that|this|your [\w-]+|our [\w-]+) "
    r"(?P<verb>are|is|am|have|has|were|was)\b",
    re.I,
)
_SUBJECT_PLACE = re.compile(rf"\b(?:{_PLACE}|search|lookup|look-up)\b", re.I)

_CONTRACTIONS = (
    (re.compile(r"\b(can)'t\b|\b(can)not\b", re.I), r"\1\2 not"),
    (re.compile(r"\b(w)on't\b", re.I), r"\1ill not"),
    (re.compile(r"\b(\w+)n't\b", re.I), r"\1 not"),
    (re.compile(r"\b(i)'m\b", re.I), r"\1 am"),
    (re.compile(r"\b(\w+)'re\b", re.I), r"\1 are"),
    (re.compile(r"\b(\w+)'ve\b", re.I), r"\1 have"),
    (re.compile(r"\b(\w+)'ll\b", re.I), r"\1 will"),
    (re.compile(r"\b(i|we|you|they|he|she)'d\b", re.I), r"\1 would"),
    (re.compile(r"\b(that|it|there|here|what|nothing|nobody|one|name|number|system|search"
                r"|lookup|file|he|she|who)'s\b", re.I), r"\1 is"),
    (re.compile(r"\b(\w+)'s (not|no|nothing|coming|showing|drawing|been)\b", re.I),
     r"\1 is \2"),
)


def normalise(text: str) -> str:
    """Straight quotes, contractions spelled out ("isn't" -> "is not"), spaces collapsed."""
    out = text.replace("\u2019", "'").replace("\u2018", "'")
    # Every contraction but "cannot" has an apostrophe: without one, only that is read.
    for pat, rep in _CONTRACTIONS if "'" in out else _CONTRACTIONS[:1]:
        out = pat.sub(rep, out)
    return " ".join(out.split())


def _clauses(text: str) -> list[tuple[str, bool]]:
    """(clause, is the last clause of a question) in order. Sentences split at . ! ? ;
    and clauses at dashes and at "but" / "however" / "though"."""
    out: list[tuple[str, bool]] = []
    for m in re.finditer(r"[^.!?;]+(?:[.!?;]+|$)", text):
        sentence = m.group(0).strip()
        if not sentence:
            continue
        question = sentence.endswith("?")
        parts = [p for p in re.split(r"\s+[-\u2013\u2014]+\s+|\u2014|\s*\b(?:but|however|though"
                                     r"|although)\b", sentence) if p and p.strip()]
        for i, p in enumerate(parts):
            out.append((p.strip(" ,.!?;"), question and i == len(parts) - 1))
    return out


def _object_ok(obj: str, *, clause: str, subject: str, kind: str) -> bool:
    """Is the object of a negated look-up verb the caller's record?"""
    words = obj.strip(" ,").split()
    head = " ".join(words[:6])
    low = head.lower()
    if _NOT_RECORD.search(" ".join(words[:4])):
        return False
    has_cue = bool(_CUE.search(obj)) or bool(_SUBJECT_PLACE.search(subject))
    if not words:
        return kind == "search"  # "the record could not be found", "I'm not finding"
    first = re.sub(r"[^\w-]", "", words[0])
    if kind == "search" and re.match(r"(?:your|the|those|these|that|any) (?:details|information"
                                     r"|info|data)\b", low):
        return True  # "I couldn't find your details"
    if re.match(r"your (?:details|information|info)\b", low) and "in front of" not in low:
        return True  # "we don't have your information (on file)"
    det = re.match(r"(?:that|this|these|those) ([a-z].*)", low)
    if det and not re.match(rf"(?:[a-z-]+ )?(?:{_RECORD})\b|(?:one|in|on|under|for|at|with"
                            r"|anywhere|right|here|there|yet|either|now|listed|at all)\b",
                            det.group(1)):
        return False  # "I don't have that information in front of me"
    if (kind == "see" and not has_cue
            and not re.match(r"(?:a|an|any|the|your|that|this|those|these|such|no)\b", low)
            and re.match(rf"(?:{_RECORD})\b", low) and low.split()[0].endswith("s")):
        return False  # "we don't have appointments on Sundays": a rule, not a lookup
    if re.match(rf"(?:a |an |any |the |your |that |this |those |these |such |)"
                rf"(?:[\w-]+ ){{0,2}}?(?:{_RECORD})\b", low):
        if re.match(r"(?:a |an |any |the |that |this |)?(?:anything|anyone|anybody|one"
                    r"|a thing)\b", low) and kind != "search":
            return has_cue
        if re.match(r"(?:any |the |your |that |a |an )?(?:number|address|name|id)s?\b",
                    low) and kind == "see":
            return has_cue
        return True
    if re.match(rf"(?:{_PRONOUN})\b", low):
        # "I can't see you (before Thursday)" is about appointments unless it says where
        # it looked.
        return has_cue if kind == "see" and low.startswith("you") else True
    if first[:1].isupper() or first[:1].isdigit():
        return True  # a name, an address, an ID: "I'm not seeing a Samira Haddad"
    if re.match(r"(?:a|an|any) [A-Z]", head):
        return True
    return False


# Every refusal pattern above needs one of these words (after normalise, which spells out
# "n't"): a clause without any is not read further.
_REFUSAL_HINTS = ("no", "never", "unable", "failed", "zero", "empty", "blank", "dry", "short",
                  "trouble", "difficulty", "hard time", "luck", "dice")


def _clause_refuses(clause: str) -> bool:
    low = fold(clause)
    if not any(w in low for w in _REFUSAL_HINTS):
        return False
    c = _LOOKS_LIKE.sub(
        lambda m: (f"{m['subj']} do not {m['verb']}" if m["verb"].lower().startswith("ha")
                   else f"{m['subj']} {m['verb']} not"), clause)
    c = _CONDITIONAL.sub("", c)
    if _FIRST_TRY.search(c):
        return False
    for m in _NEGATED.finditer(c):
        subject = c[: m.start()]
        rest = m.group("rest")
        if re.search(r"\byou\s+(?:\w+\s+){0,2}$", subject, re.I) and (
            m.group("search") or (m.group("see") and not m.group("see").lower().startswith("ha"))
        ):
            continue  # "you can't find the email": the caller's search, not ours
        if m.group("match"):
            if not _NOT_RECORD.search(" ".join(rest.split()[:3])):
                return True
            continue
        if m.group("be"):
            word = m.group("be").lower()
            if word.startswith(("appear", "valid", "a valid")) and not (
                _CUE.search(rest) or re.match(r"\s*(?:to exist|in|on)\b", rest)
            ):
                continue
            return True
        kind = "search" if m.group("search") else "see"
        verb = (m.group("search") or m.group("see")).lower()
        if kind == "search" and verb.startswith(("get", "got")):
            if re.match(r"\s*(?:a |any )?(?:match|matches|hits?|results?|records?)\b", rest):
                return True
            if re.match(r"\s*(?:anything|anyone|anybody)\b", rest) and _CUE.search(rest):
                return True  # "I haven't got anything for that address"
            continue
        if verb.startswith("show") and re.match(r"\s*(?:in|on|under|for)\b", rest) and (
            _CUE.search(rest)
        ):
            return True  # "your name isn't showing in our system"
        if _object_ok(rest, clause=c, subject=subject, kind=kind):
            return True
    e = _EMPTY.search(c)
    if e:
        if e.group("nocue") is None:
            return True
        # "no patient by that name", "no listing comes up": a record noun needs a place.
        if not _NOT_RECORD.search(e.group(0)[: e.start("nocue") - e.start()]) and (
            _CUE.search(e.group("nocue"))
            or re.match(r"\s*(?:comes? up|came up|turned up|turns up|shows? up|showed up"
                        r"|matches|matched|exists?|listed|registered)\b", e.group("nocue"))
        ):
            return True
    m2 = _NONE_THERE.search(c)
    if m2:
        rest = m2.group("rest") if m2.group("rest") is not None else m2.group("rest2")
        if not _NOT_RECORD.search(" ".join(rest.split()[:2])) and (
            _CUE.search(rest) or re.search(rf"\b(?:{_MATCH}|comes? up|came up|shows? up)\b",
                                           rest, re.I)):
            return True
    return False


@functools.lru_cache(maxsize=8192)  # agents repeat themselves across calls
def says_not_found(text: str) -> bool:
    """Does the agent say, in ``text``, that it cannot find the caller's record?

    Deterministic. A refusal clause followed by one saying the record was found after
    all ("... but here it is") does not count."""
    clauses = _clauses(normalise(text))
    refused = False
    for clause, is_question in clauses:
        if refused and _FOUND.search(clause):
            return False
        if not is_question and _clause_refuses(clause):
            refused = True
    return refused
