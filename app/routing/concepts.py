"""What kind of prompt this is, in words a person uses: the concepts a router weighs and shows.

Each kind is a concept (multi-step arithmetic, a proof, a factual lookup, small talk, code, a
constraint puzzle, a date calculation…) found by cheap patterns; a prompt's kind is the first one
found in KINDS' order (a proof about numbers is a proof, code that adds is code). The kinds are
also how a model's record is kept (routing/evidence.py): "thinking helped 0 of 40 checked
multi-step arithmetic questions" is evidence for the next multi-step arithmetic question, not for
a greeting. No model is run: reading a prompt's kind costs about 1.7 ms on a GSM8K question
(tests/perf/test_router_cost.py), and is cached for the prompt being typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

THINK, DIRECT = "think", "direct"


@dataclass(frozen=True)
class Kind:
    name: str  # a slug: the data files' names (data/router/*/<name>.txt) and the evidence's key
    words: str  # how a reason names it
    leans: str  # THINK or DIRECT: which way the kind usually goes, before any model's record
    pattern: re.Pattern


def _p(text: str) -> re.Pattern:
    return re.compile(text, re.I | re.X)


_NUM = r"\d[\d,]*(?:\.\d+)?"
_OP = r"(?:[-+*/x×÷^]|times|multiplied\s+by|divided\s+by|plus|minus|over|mod)"

_MONTH = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
_SHORT = r"^(?!(?:\S+\s+){12})"  # at most 12 words
_LANGUAGE = (r"(?:english|spanish|french|german|italian|japanese|chinese|mandarin|cantonese|portuguese|russian|korean|"
             r"arabic|dutch|hindi|swedish|norwegian|danish|finnish|greek|turkish|polish|thai|vietnamese|swahili|latin|"
             r"hebrew|indonesian|czech|ukrainian|irish|welsh)")

# In the order a prompt's kind is read: the first that matches is its kind.
KINDS: tuple[Kind, ...] = (
    Kind("proof", "a proof or derivation", THINK, _p(
        r"^\W*(?:prove|derive|demonstrate|justify|verify)\b|^\W*show\s+(?:that|why|it)\b|"
        r"\b(?:prove|proof|demonstrate|justify)\s+(?:that|why|it)\b|\bshow\s+that\b|\bproof\s+(?:of|for)\b|"
        r"\bby\s+(?:induction|contradiction)\b|\bwhy\s+must\b")),
    Kind("summary", "a summary or rewrite", DIRECT, _p(
        r"\bsummari[sz]|\bsummary\b|\bsum\s+up\b|\btl;?dr\b|\bin\s+one\s+(?:line|sentence)\b|\brephrase|\breword|"
        r"\brewrite|\bparaphrase|\bshorten|\bcondense|\bproofread|\bfix\s+(?:the\s+)?(?:grammar|spelling|typos?|"
        r"punctuation)|\b(?:fix|correct|check|improve)\s+(?:the\s+|my\s+)?(?:grammar|spelling|punctuation|typos?|"
        r"wording)\b|\bcorrect\s+(?:this|the)\s+(?:sentence|text|paragraph|email)\b|\bmake\s+(?:this|it)\s+(?:sound\s+)?"
        r"(?:more\s+|less\s+)?(?:formal|professional|friendl|polite|casual|concise|shorter|clearer|simpler|nicer|kinder|"
        r"warmer|punchier)|\bmake\s+(?:this|it)\s+\w+\s+(?:sound\s+)?(?:more\s+|less\s+)?\w+(?:er|al)\b|"
        r"^\W*(?:fix|correct|simplify|shorten|improve|edit|polish|tidy|clean\s+up|tighten|rewrite|reword|rephrase|"
        r"summari[sz]e|condense)\b[^:]{0,60}:|"
        r"\bturn\s+this\s+into\b|\bmore\s+(?:formal|polite|casual|concise|professional)\b|"
        r"\b(?:a\s+)?title\s+for\s+(?:this|the|a)\b|\bheadline\b")),
    Kind("creative", "creative writing", DIRECT, _p(
        r"\bhaiku|\blimerick|\bpoem|\bslogan|\btagline|\bjingle|\bsonnet|\bbirthday\s+(?:message|wish|card)|"
        r"\btweet\b|\bcaption\b|\bname\s+(?:for|ideas)\b|\bnames?\s+for\s+(?:my|a|our)\b|\bsuggest\s+(?:a|some)\s+names?\b|"
        r"\bname\s+my\b|\bshould\s+(?:i|we)\s+name\b|\btitle\s+for\s+(?:my|our)\b|\btoast\b|\bmotto\b|\bpun\b|\bjoke\b|"
        r"\bwrite\s+(?:me\s+)?(?:a|an|some)\s+(?:[\w-]+\s+){0,3}(?:note|message|text|story|tale|poem|card|wish|"
        r"speech|greeting|verse|lyrics?|rhyme|riddle\s+for\s+kids)\b")),
    Kind("translation", "a translation", DIRECT, _p(
        r"\btranslat|\bhow\s+(?:do\s+(?:you|i)|would\s+you|to|can\s+i)\s+say\b|\bin\s+" + _LANGUAGE + r"\b|"
        r"\b" + _LANGUAGE + r"\s+(?:for|word|phrase)\b|\b(?:word|phrase)\s+for\b|\bmean\s+in\s+\w+\b|"
        r"^\W*what\s+does\s+'[^']+'\s+mean\b")),
    Kind("puzzle", "a constraint puzzle", THINK, _p(
        r"^(?![\s\S]*\bhow\s+many\s+(?:different\s+|distinct\s+)?(?:ways|necklaces|arrangements)\b)[\s\S]*?(?:"
        r"\bpuzzle|\briddle|\bknights?\b|\bknaves?\b|\bliars?\b|\blies\b|\blying\b|\btruth\b|\bwho\s+(?:owns|sits|"
        r"is\s+sitting|finished|came|lives|has\s+the|is\s+the\s+(?:tallest|oldest|youngest|shortest)|broke|stole|took|ate|did)|"
        r"\bsitting|\bseated\b|\bcross(?:es|ing)?\b.*\b(?:river|bridge)\b|\b(?:wolf|goat|cabbage)\b|"
        r"\bcoins?\b.*\b(?:balance|weigh|scale|fake|counterfeit)|\bjugs?\b|\bswitch(?:es)?\b.*\bbulb|\bropes?\b.*\bburn|"
        r"\bovertake|\bthinking\s+of\s+a\s+(?:\w+\s+)?number|\b(?:boxes?|doors?|chests?)\b.*\bsays?\b|\bportrait\b|"
        r"\bsnail\b|\bhow\s+(?:can|do|could|would)\s+(?:you|i|they|we|he|she)\b.*\b(?:measure|find\s+out|determine|"
        r"figure\s+out|cross|identify|tell\s+which)\b|"
        r"\b(?:left|right)\s+of\b|\bdirectly\s+(?:behind|ahead|in\s+front)|\bin\s+front\s+of\b|\bnext\s+to\b|"
        r"\b(?:taller|shorter|older|younger|faster|slower|heavier|lighter)\s+than\b.*\b(?:taller|shorter|older|"
        r"younger|faster|slower|heavier|lighter)\s+than\b|\bdifferent\s+(?:pet|colou?r|house|drink|job)s?\b|"
        r"\bfinished\s+(?:first|last|before|after)\b|\bdeduce\b|\blogic\b|\bclues?\b|\bin\s+some\s+order\b|"
        r"\bhow\s+is\s+(?:that|this|it)\s+possible\b|\bto\s+be\s+sure\b|\bhats?\b|\bgrid\b|\blockers?\b|"
        r"\bstraight\s+cuts?\b|\bmatching\s+pair\b|\b(?:stand|standing|sit|sitting)\s+in\s+a\s+(?:line|queue|row|circle)\b|"
        r"\b(?:father|mother|brother|sister|son|daughter|aunt|uncle|cousin|nephew|niece|grandfather|grandmother)'s\b|"
        r"\bonly\s+(?:daughter|son|child)\b|\brelated\s+to\s+(?:the|him|her|me)\b|\bsits?\b|\bacross\s+from\b|"
        r"\bon\s+\w+'s\s+(?:left|right)\b|\b(?:round|square)\s+(?:dinner\s+)?table\b|"
        r"\beach\s+(?:have|has|own|owns|wear|wears|like|likes|drink|drinks|got)\s+(?:one|a\s+different)\b|"
        r"\b(?:a|an)\s+\w+,\s+(?:a|an)\s+\w+,?\s+or\s+(?:a|an)\s+\w+\b|\bhourglass|\bsand\s+timers?\b|\bdoubles\b.*\bhalf\b|"
        r"\bi'?m\s+a\s+number\b|\bwhat\s+number\s+am\s+i\b|\boff\s+by\b|\b(?:immediately|right|just)\s+(?:after|before|behind)\b|"
        r"\bwas(?:n't|\s+not)\s+(?:first|last)\b|\blabel(?:s|led)?\b.*\bwrong\b)")),
    Kind("code", "code to debug or write", THINK, _p(
        r"```|\b(?:def|class|return|elif|printf|println|console\.log|var|const|let|int|void|import|lambda|"
        r"for\s*\(|while\s*\(|foreach)\b.*[=;:(){}]|\bprint\s*\(|\bfor\s+\w+\s+in\b|\bwhile\s+.{1,40}:|"
        r"\bbug\b|\bdebug|\bcompile|\bsegfault|\bstack\s*trace|\bimplement\b|\bO\(|\bloop\b|\bselect\b.*\bfrom\b|"
        r"\bgroup\s+by\b|\bjoin\b|\bquery\b|\s-(?:name|mtime|type|rf?)\b|\b(?:grep|sed|awk|chmod|xargs)\b|"
        r"\b(?:python|javascript|typescript|java|c\+\+|rust|golang|sql|bash|regex|haskell|kotlin|swift)\b|"
        r"\b(?:function|algorithm|recursion|recursive|big[- ]o|complexity|linked\s+list|binary\s+search|"
        r"array|hash\s*map|off[- ]by[- ]one|code|snippet|script|program|stack|queue|cache)\b")),
    Kind("date", "a date calculation", THINK, _p(
        r"\b(?:what|which)\s+day\s+(?:of\s+the\s+week|will|was|is|would|does)|\bday\s+of\s+the\s+week\b|\bweekday\b|"
        r"\b(?:days?|weeks?|months?|years?)\s+(?:between|from|until|till|after|before|since|later|ago)\b|"
        r"\bhow\s+(?:old|many\s+days|many\s+weeks|many\s+months|many\s+years|long\s+until|long\s+ago)\b.*"
        r"(?:born|birthday|\b(?:19|20)\d\d\b|" + _MONTH + r")|\bleap\s+years?\b|\btime\s*zones?\b|"
        r"\b(?:born|years?\s+old)\b.*\b(?:19|20)\d\d\b|"
        r"\b(?:utc|gmt|pst|pdt|cet|cest|jst|aest)\b|\bwhat\s+(?:time|date)\b|\bwhich\s+date\b|\bon\s+what\s+date\b|"
        r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)s?\b.*\b(?:days?|weeks?|later|after|from|"
        r"date|when)\b|\b(?:first|second|third|fourth|last)\s+(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b|"
        r"\bfriday\s+the\s+13|\b\d{1,2}(?::\d\d)?\s*(?:am|pm)\b|\b\d{1,2}:\d\d\b|"
        r"(?:\b\d{1,2}(?:st|nd|rd|th)?\s+" + _MONTH + r"\b|\b" + _MONTH + r"\s+\d{1,2}(?:st|nd|rd|th)?\b).*"
        r"\b(?:date|day|days|when|until|after|before|later|ends?|renew\w*|due|deadline|expire\w*)\b")),
    Kind("math", "a math problem", THINK, _p(
        r"\bprimes?\b|\bfactori[sz]|\bdivisible\b|\bdivisors?\b|\bremainder\b|\bgcd\b|\blcm\b|\bgreatest\s+common|"
        r"\bleast\s+common|\bprobabilit|\bchance\s+(?:of|that)\b|\bodds\b|\bcombinations?\b|\bpermutations?\b|"
        r"\barrangements?\b|\barrange\b|\bhow\s+many\s+(?:ways|different|distinct|arrangements|committees|handshakes|"
        r"diagonals|subsets|\d|positive|integers|numbers|solutions)\b|\bcommittees?\b|\bdigits?\b|\btrailing\s+zeros\b|"
        r"\bconsecutive\b|\bP\(|\btriangle\b|\bcircle\b|\brectangle\b|\bcards?\b|\bdeck\b|\b\d+!|\^\s*\d|"
        r"\bsolve\b|\bequations?\b|\binequalit|\babsolute\s+value|\bfor\s+which\b|\b\d*[a-z]\s*[-+]\s*\d+\s*[=<>]|"
        r"\bsequence\b|\bseries\b|\bnext\s+(?:number|term)\b|\bnth\s+term\b|\bprogression|\bgeometric\b|"
        r"\bdice\b|\bdie\b|\bderivative|\bintegral|\blogarithm|\blog\s*\(|\bsquare\s+root\s+of\s+\d{3,}|"
        r"\b(?:area|volume|perimeter|circumference|radius|hypotenuse|diagonal|angle)s?\b|\bmodulo\b|\bmod\s+\d")),
    Kind("multi_step_arithmetic", "multi-step arithmetic", THINK, _p(
        r"(?=.*\d.*\d)(?=.*\b(?:then|after|each|every|per|total|altogether|remaining|left|more\s+than|less\s+than|"
        r"twice|half|how\s+many|how\s+much|how\s+long|how\s+far|in\s+all|discount|tip|tax|split|spends?|saves?|"
        r"earns?|costs?|buys?|sells?|bought|sold|paid|pays?|km|miles?|mph|hours?|minutes?|speed|rate|%|percent)\b)"
        r"(?:.*\b[a-z]+\b){12}|(?=(?:\D*\d+(?!\d)){3})(?=.*(?:\d\s*[-+*/×÷^%]|\bof\b|\btimes\b|\bplus\b|\bminus\b))")),
    Kind("one_step_arithmetic", "one-step arithmetic", DIRECT, _p(
        # Two numbers of two digits or more multiplied or divided: a small model needs steps for that.
        r"^(?!.*\d{2,}\s*(?:[*x×÷/]|times|multiplied\s+by|divided\s+by)\s*\d{2,})"
        r"(?!(?:\S+\s+){9})(?!(?:\D*\d+(?!\d)){3})(?=.*\d)(?=.*(?:\d\s*[-+*/x×÷^%]\s*\d|\d\s*%|\b(?:plus|minus|times|"
        r"divided|multiplied|over|double|triple|halve|half|third|quarter|fifth|tenth|squared|cubed|root|power|"
        r"percent|add|subtract|multiply|divide|sum|product)\b))")),
    Kind("factual", "a factual lookup", DIRECT, _p(
        r"^\W*(?:what\s+(?:is|was|are)\s+the\s+(?:capital|currency|population|largest|smallest|tallest|longest|"
        r"highest|deepest|biggest|boiling|freezing|chemical|speed\s+of)|what\s+does\s+.{1,40}\s+(?:mean|stand\s+for)|"
        r"who\s+(?:is|was|wrote|painted|invented|discovered|composed|founded|directed|sang|built|developed)|"
        r"when\s+(?:is|was|did)|where\s+(?:is|was|are|do|does)|define|definition\s+of)|"
        + _SHORT + r"(?!(?:\D*\d+(?!\d)){2})\W*(?:what|what's|whats|which|who|whom|when|where|how\s+many|how\s+tall|"
        r"how\s+big|how\s+far|how\s+long|how\s+old|in\s+what|name\s+the|tell\s+me\s+the|define)\b")),
    Kind("small_talk", "small talk", DIRECT, _p(
        r"^\W*(?:hi|hello|hey|heya|hiya|yo|howdy|greetings|good\s+(?:morning|afternoon|evening|night)|thanks|thank\s+you|"
        r"thx|ty|cheers|bye|goodbye|see\s+you|nice\s+to\s+meet|how\s+are\s+you|how's\s+it\s+going|what's\s+up|sup|"
        r"great\s+job|well\s+done|good\s+job)\b|" + _SHORT + r"(?!.*\d).*\b(?:you|your|you're|cheers|thanks|chat|bored|"
        r"helpful|lol|haha|hello|hi|hey|weekend|mood|doing|feeling|glad|nice|sweet|cool|awesome|great)\b")),
)
BY_NAME = {kind.name: kind for kind in KINDS}
OTHER = "other"


@lru_cache(maxsize=512)  # the app asks on every keystroke, and the router and the record ask again
def kind_of(prompt: str) -> str:
    """The prompt's kind (KINDS' first that matches), or OTHER."""
    return next((kind.name for kind in KINDS if kind.pattern.search(prompt)), OTHER)


def words_for(kind: str) -> str:
    """How a reason names a kind: 'multi-step arithmetic'; OTHER is 'this kind of prompt'."""
    return BY_NAME[kind].words if kind in BY_NAME else "this kind of prompt"
