"""Offline condensing (no chat model): carry the subject of the earlier turns into an elliptical follow-up.

A question is split into its *topic* (what it asks about: 犹豫期, "the free look period"), its *frame* (how it
asks: "有多长？", "赔不赔？", "How long is … ?", "Is … covered?") and the *names* in it (a product or a company:
安心e生, 借款人意外险, "Global Health Policy", Ulta). A follow-up is read against the previous question, itself
condensed first, so that a chain "犹豫期多长？" → "那等待期呢？" → "宽限期呢？" keeps the frame:

- a new topic in the old frame: "那等待期呢？", "what about maternity?", "and IVF?" → the previous question with
  its topic replaced ("等待期有多长？", "Is maternity covered?"), its names kept;
- a new name: "and MGM?", "那借款人意外险呢？" → the previous question about that name;
- a qualifier or a condition: "and for the family plan?", "what if I didn't get pre-approval?" → the previous
  question with it added;
- a pronoun: "它", "这个", "这个保险", "it", "this policy", "they" (a company) → what it stands for;
- a continuation without a subject: "那重疾也要扣吗？", "交齐了多久出结果？", "不说的话会怎样？" → the previous
  subject, then the follow-up.

A question with none of these marks stands on its own and is returned unchanged: the rules only fill a gap.
The marks and frames are general Chinese and English question grammar, measured on tests/data/answers/
dialogues.jsonl (README, "Conversations"), never a list of the set's questions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.records import Message
from rag.text import CJK_CHARS, has_cjk

_END = "？?！!。.～~ "
_C = f"[{CJK_CHARS}]"

# ----------------------------------------------------------------------------------------------- Chinese

# How a Chinese question asks, at its end ("有多长", "是多少", "赔不赔", "能报吗", "怎么算", "要带哪些材料").
_ZH_FRAME = re.compile(
    rf"(?:(?:有|要|是|能|可以|需要|会|可)?多(?:长|久|少钱|少|大|高)(?:时间|天)?"
    rf"|(?:有|要|是|能)?几(?:天|年|岁|个月|日|成|次|个工作日)"
    rf"|(?:是|指)(?:多少|什么|啥|几)(?:意思)?"
    rf"|(?:该|要|能|可以)?(?:怎么|怎样|如何){_C}{{0,4}}"
    rf"|{_C}不{_C}{{1,3}}"
    rf"|(?:能|可以|会|要|还|也|算|是|有){_C}{{0,3}}吗"
    rf"|(?:有|要带|要|需要)?(?:哪些|什么){_C}{{0,4}})"
    rf"[{re.escape(_END)}]*$"
)
_ZH_OPENERS = re.compile(r"^(?:那么|那如果|那要是|如果是|要是|若是|还有|另外|然后|那|再问一下|请问)[，,]?")
_ZH_ELLIPSIS = re.compile(rf"^(?P<x>.+?)(?:的话)?呢[{re.escape(_END)}]*$")
# "这个保险", and "这个" as what is bought, renewed or surrendered ("还能买这个吗"): the product
_ZH_PRODUCT_PRONOUN = re.compile(
    r"(?:这|那|该|此)(?:个|款|份)?(?:保险|产品|险种|保单|合同|条款)|(?<=[买投续退])(?:这个|这款|它)"
)
_ZH_PRONOUN = re.compile(r"这个|那个|它|其")
_ZH_IT = ("它", "其")  # "它" is the product talked about; "这个" more often the topic
# A follow-up that goes on from the previous one: an opener, "还/也/再" (again, too), "之后/以后" (after it),
# "…的话" (if so), "这样/那样" (like that); such a question leans on the subject said before.
_ZH_CONTINUES = re.compile(r"^(?:那么|那|要是|如果|然后|还有)|还|也|再|之后|以后|后来|的话|这样|那样|不说|没说")
# An elliptical "X呢？" names a topic in a few characters (等待期, 重疾, 十级伤残); a longer X is a situation.
_ZH_TOPIC_CHARS = 4
# An elliptical follow-up is short; a longer question carries its own subject even when it goes on from the last.
_ZH_FOLLOW_UP_CHARS = 10
_ZH_ASKING = re.compile(r"^(?:怎么|怎样|如何|能否|可否|是否|可以|能)")
# A name: a CJK name with Latin letters in it ("安心e生"), a product ("借款人意外险"), a company
_ZH_NAME = re.compile(
    rf"{_C}{{1,4}}[A-Za-z]{{1,3}}{_C}"
    rf"|[{CJK_CHARS}A-Za-z]{{2,10}}(?:保险|险)(?![种期费金额])"
    rf"|[{CJK_CHARS}A-Za-z]{{2,8}}(?:公司|银行)"
)
_ZH_FILLER = re.compile(r"^(?:的|我|我的|我们|要|需要|能|可以|会|还|也|都|就)+|(?:的|了)+$")

# ----------------------------------------------------------------------------------------------- English

# Words that make the frame of a question (how it asks), never its topic.
_EN_FRAME_WORDS = frozenset(
    """how long much many soon often what which when where who whom whose why is are am was were be been do does
    did can could will would should shall may might must i me my we our us you your there the a an it its this
    that these those to of for on in at by with under from about if before after within during any get got have
    has had covered cover covers pay paid payable refund refunded claim claimed allowed include included take
    takes limit eligible available apply applies need needed there's what's i'm how's more less than per each
    count counts mean means as up""".split()  # noqa: SIM905 - a word list reads better as text
)
_EN_ARTICLES = frozenset({"the", "a", "an", "my", "our", "your", "this", "that"})
_EN_FOLLOW = re.compile(
    r"^(?:and|but|so|ok|okay|also)?[\s,]*(?P<kind>what about|how about|what if|and if|and|or|also|for)\s+"
    r"(?P<x>.+?)[\s?.!]*$",
    re.IGNORECASE,
)
_EN_QUESTION_WORD = re.compile(
    r"\b(?:what|how|when|where|who|which|why|can|could|is|are|do|does|did|will|would|should|until)\b", re.IGNORECASE
)
_EN_QUALIFIER = re.compile(r"^(?:for|in|on|under|with|during|after|before|within)\b", re.IGNORECASE)
_EN_PRONOUN = re.compile(r"\b(?:it|that|this|this one|that one)\b", re.IGNORECASE)
# "does it pay for IVF?", "will it cover …": "it" is the policy, not the topic asked about before
_EN_POLICY_IT = re.compile(
    r"\b(?:does|will|would|can|could|did|should)\s+it\s+(?:pay|cover|include|reimburse)", re.IGNORECASE
)
_EN_COMPANY_PRONOUN = re.compile(r"\b(?:they|them|their)\b", re.IGNORECASE)  # customers' word for the insurer
_EN_PRODUCT_PRONOUN = re.compile(
    r"\b(?:this|that|the same|my|our)\s+(?:policy|plan|product|insurance|cover|coverage|company)\b", re.IGNORECASE
)
# The object inside a topic: "waiting period for | having a baby", "refund on | cancellation"
_EN_INNER_OBJECT = re.compile(r"\b(?:for|of|on|under|after|before)\s+(\S.*)$", re.IGNORECASE)
# A name: capitalised words not at the start of the question ("Global Health Policy", "Ulta's", "MGM").
_EN_NAME = re.compile(
    r"(?<!^)(?<![.?!]\s)\b(?!I\b|I['’])(?:[A-Z][A-Za-z0-9&\-]*(?:'s|’s)?)(?:\s+[A-Z][A-Za-z0-9&\-]*(?:'s|’s)?)*"
)


@dataclass(frozen=True)
class Parsed:
    """A question cut into what it asks about (`topic`), how it asks (`before` + topic + `after`), its names."""

    text: str
    before: str
    topic: str
    after: str
    names: tuple[str, ...]


def condense_by_rules(question: str, history: Sequence[Message]) -> str:
    """`question` made standalone from the previous user question of `history` (itself condensed first)."""
    previous: str | None = None
    for message in history:
        if message.role == "user":
            previous = _condense_one(message.content, previous) if previous else message.content
    return _condense_one(question, previous) if previous else question


def _condense_one(question: str, previous: str) -> str:
    question = question.strip()
    if has_cjk(question):
        return _condense_zh(question, previous) or question
    return _condense_en(question, previous) or question


# ----------------------------------------------------------------------------------------------- Chinese


def parse_zh(text: str) -> Parsed:
    """The frame is the shortest question ending that leaves a topic before it (the whole question when it is
    all frame: "怎么申请理赔？")."""
    core = _ZH_OPENERS.sub("", text.strip().rstrip(_END))
    start = next((i for i in range(1, len(core)) if _ZH_FRAME.match(core, i)), 0 if _ZH_FRAME.match(core) else None)
    topic, after = (core, "") if start is None else (core[:start], core[start:])
    names = tuple(match.group(0) for match in _ZH_NAME.finditer(topic))
    return Parsed(text, "", topic, after, names)


def _condense_zh(question: str, previous: str) -> str | None:
    prev = parse_zh(previous)
    subject = _zh_subject(prev)
    frame = prev.after or ""
    bare = _ZH_OPENERS.sub("", question.strip())
    ellipsis = _ZH_ELLIPSIS.match(bare)
    if ellipsis and not _ZH_FRAME.search(ellipsis.group("x")):  # "那等待期呢？": a new topic (or name), old frame
        x = _ZH_OPENERS.sub("", ellipsis.group("x")).strip("，, ")
        if not x:
            return previous
        if _ZH_NAME.fullmatch(x):
            if prev.names:
                return previous.replace(prev.names[0], x, 1)
            return _zh_question(f"{x}{prev.topic}{frame}")
        if len(x) > _ZH_TOPIC_CHARS:  # "后来人又回来了呢？": not a topic but what happened next, to the same subject
            return _zh_question(f"{subject}，{x}") if subject and subject not in x else _zh_question(x)
        if not frame:  # the previous question had no frame to lend: the new topic is the question
            return _zh_question(x)
        names = "".join(name for name in prev.names if name not in x)
        topic = _zh_aligned(prev.topic, x)
        lead = names if names and names not in topic else ""
        return _zh_question(f"{lead}{'的' if lead else ''}{topic}{frame}".replace("的的", "的"))
    if _ZH_PRODUCT_PRONOUN.search(question):  # "这个保险能保几年？": the product named before
        return _ZH_PRODUCT_PRONOUN.sub(prev.names[0], question, count=1) if prev.names else None
    own = parse_zh(question)
    pronoun = _ZH_PRONOUN.search(question)
    if pronoun and subject and not own.names:  # "它的等待期多久？", "这个能退吗？" (not "这个借款人意外险…")
        named = prev.names[0] if prev.names and pronoun.group(0) in _ZH_IT else subject
        return _ZH_PRONOUN.sub(named, question, count=1)
    lacks_topic = not _ZH_FILLER.sub("", own.topic.strip("，, ")) and bool(own.after)  # "要多久？", "能退多少？"
    short = sum(1 for ch in question if has_cjk(ch)) <= _ZH_FOLLOW_UP_CHARS
    if subject and (lacks_topic or (short and _ZH_CONTINUES.search(question))) and not own.names:
        return f"{subject}，{bare}" if subject not in bare else None
    return None


def _zh_aligned(topic: str, x: str) -> str:
    """The previous topic with `x` in place of its like part: "等待期" for "犹豫期" (the same last character),
    "十级" for "一级" in "一级伤残赔"; the whole topic gives way when nothing lines up."""
    if len(x) <= _ZH_TOPIC_CHARS:
        end = topic.rfind(x[-1])
        if end + 1 >= len(x):
            return topic[: end + 1 - len(x)] + x + topic[end + 1 :]
    return x


def _zh_question(text: str) -> str:
    return text.rstrip(_END) + "？"


def _zh_subject(prev: Parsed) -> str:
    """What the previous question was about: its topic, else (a question that is all frame, "怎么申请理赔？")
    its words without the asking ones."""
    topic = prev.topic.strip("，, ")
    return topic or _ZH_ASKING.sub("", prev.after.rstrip(_END)) or (prev.names[0] if prev.names else "")


# ----------------------------------------------------------------------------------------------- English


def parse_en(text: str) -> Parsed:
    """The topic is the span from the first to the last word that is neither a frame word nor in a name."""
    core = text.strip().rstrip(" ?.!")
    spans = [match.span() for match in _EN_NAME.finditer(core)]
    names = tuple(core[start:end] for start, end in spans)
    words = [
        match
        for match in re.finditer(r"[A-Za-z0-9][A-Za-z0-9'’\-]*", core)
        if match.group(0).lower() not in _EN_FRAME_WORDS and not any(s <= match.start() < e for s, e in spans)
    ]
    if not words:
        return Parsed(text, core, "", "", names)
    start, end = words[0].start(), words[-1].end()
    return Parsed(text, core[:start], core[start:end], core[end:], names)


def _main_name(names: tuple[str, ...]) -> str:
    """The company or product among a question's names: a proper name before an acronym ("Ulta" before "EPS")."""
    return next((name for name in names if not name.replace("'s", "").isupper()), names[0])


def _condense_en(question: str, previous: str, *, follow_up: bool = True) -> str | None:
    prev = parse_en(previous)
    stem = previous.rstrip(" ?.!")
    follow = _EN_FOLLOW.match(question.strip()) if follow_up else None
    if follow:
        x, kind = follow.group("x").strip(), follow.group("kind").lower()
        own_question = _EN_QUESTION_WORD.search(x) and len(x.split()) > 3
        if kind in ("what if", "and if") and not own_question:  # a condition on the previous question
            return f"{stem}, if {x}?"
        if kind == "for" or _EN_QUALIFIER.match(x):  # "and for the family plan?": a qualifier
            return _en_qualified(stem, x if _EN_QUALIFIER.match(x) else f"for {x}")
        if own_question:  # "and until what age can my kids stay on it?": a question of its own
            x = f"if {x}" if kind == "and if" else x
            return _condense_en(x, previous, follow_up=False) or f"{x.rstrip(' ?.!')}?"
        if len(x.split()) <= 6:
            return _en_new_subject(prev, stem, x)
    if _EN_PRODUCT_PRONOUN.search(question):  # "is this policy renewable?": the product named before, if any
        return _EN_PRODUCT_PRONOUN.sub(_main_name(prev.names), question, count=1) if prev.names else None
    short = len(question.split()) <= 8
    pronoun = short and _EN_PRONOUN.search(question) and not _EN_POLICY_IT.search(question)
    if pronoun and (prev.topic or prev.names):  # "is it covered?"
        return _EN_PRONOUN.sub(prev.topic or _main_name(prev.names), question, count=1)
    if _EN_COMPANY_PRONOUN.search(question) and prev.names:  # "how much stock did they buy back?"
        return _EN_COMPANY_PRONOUN.sub(_main_name(prev.names), question, count=1)
    own = parse_en(question)
    if short and not own.topic and not own.names and prev.topic:  # "how much?", "up to what limit?"
        return f"{question.rstrip(' ?.!')} {prev.topic}?"
    return None


def _en_qualified(stem: str, qualifier: str) -> str:
    """The previous question with `qualifier` ("after 8 months", "for a monthly instalment") in place of its
    phrase with the same preposition, or added at its end."""
    preposition = qualifier.split()[0].lower()
    ends = r"\s*[,?;:]|\s+-\s|\s+(?:how|what|when|where|why|who|is|are|do|does|can|will|and|or)\b|$"
    same = re.search(rf"\b{preposition}\s+[^,?;:]+?(?={ends})", stem, re.IGNORECASE)
    if same:
        return f"{stem[: same.start()]}{qualifier}{stem[same.end() :]}?"
    return f"{stem} {qualifier}?"


def _en_new_subject(prev: Parsed, stem: str, x: str) -> str:
    """The previous question about `x`: another name in place of its name, or another topic in its frame."""
    named = bool(_EN_NAME.fullmatch(" " + x)) or (x[:1].isupper() and x.split()[0].lower() not in _EN_ARTICLES)
    if named and prev.names:  # "and MGM?"
        old = _main_name(prev.names)
        possessive = "'s" if old.endswith(("'s", "’s")) and not x.endswith("'s") else ""
        return stem.replace(old, x + possessive, 1) + "?"
    if named and len(prev.topic.split()) > 2:  # a name, and no name before it to stand in for: ask about both
        return f"{stem}: {x}?"
    if prev.topic:
        inner = _EN_INNER_OBJECT.search(prev.topic)
        if inner:  # "a waiting period for having a baby": what the topic is of gives way
            return f"{prev.before}{prev.topic[: inner.start(1)]}{x}{prev.after}?"
        before = prev.before
        last = before.rstrip().split()[-1:]
        if x.split()[0].lower() in _EN_ARTICLES and last and last[0].lower() in _EN_ARTICLES:
            before = before.rstrip()[: -len(last[0])]
        return f"{before}{x}{prev.after}?"
    if prev.names:  # "Is IVF covered?" then "what about a nose job?": the name was the topic
        return stem.replace(_main_name(prev.names), x, 1) + "?"
    return f"{stem} {x}?"
