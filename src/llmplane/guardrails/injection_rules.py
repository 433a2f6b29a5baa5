"""The heuristic rules of the prompt-injection detector, as data.

Each rule is a regular expression over the normalised text (see
:mod:`llmplane.guardrails.normalize`), a weight (how sure one match makes us, 0 to 1),
and trigger words: the rule's regex runs only when one of them is in the lower-cased
text, so a prompt that mentions none of them costs a few substring searches, not a
regex scan per rule. Weights are multiplied per source (``user``, ``tool``, ``document``):
text addressed to an AI is ordinary in what a user types and suspicious inside a web
page or a tool's output.

Rule ids are stable: they appear in verdicts, logs and metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmplane.guardrails.base import Source

__all__ = ["META_DISCUSSION", "QUOTED", "RULES", "SQUASHED_RULES", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One pattern of one rule id, its weight, and the words that gate it.

    A case-insensitive pattern is compiled in lower case, to run on the lower-cased text
    without ``re.IGNORECASE``, and without its leading ``\\b`` (checked by
    :meth:`starts_word` instead): both would stop the regex engine from skipping ahead to
    the characters a match can start with, which makes a scan ~10 times slower."""

    id: str
    pattern: re.Pattern[str]
    weight: float
    triggers: tuple[str, ...]
    per_source: dict[Source, float] = field(default_factory=dict)
    lowered: bool = True  # runs on the lower-cased text
    word_start: bool = False  # a match must start at a word boundary
    # When set, every match starts with one of these: the pattern is tried only there
    # (``match`` at each occurrence) instead of scanning the whole text.
    anchors: tuple[str, ...] = ()
    sentence_start: bool = False  # a match must open a sentence, a line or a quote

    def opens_sentence(self, text: str, start: int) -> bool:
        """Whether ``text[start:]`` opens a sentence, a line, a quote, an HTML element or
        comment, a list item, or follows a colon."""
        if not self.sentence_start:
            return True
        before = text[max(0, start - 8) : start].rstrip(" \t")
        return not before or before[-1] in _OPENERS

    def weight_for(self, source: Source) -> float:
        return min(1.0, self.weight * self.per_source.get(source, 1.0))

    def starts_word(self, text: str, start: int) -> bool:
        """Whether a match at ``start`` honours the pattern's dropped leading ``\\b``."""
        if not self.word_start or start == 0:
            return True
        before = text[start - 1]
        return not (before.isalnum() or before == "_") or not (
            text[start].isalnum() or text[start] == "_"
        )


# What may stand right before a sentence: its end, a line break, a quote, a colon, the end
# of an HTML tag or the start of a comment (``<!--``), a list dash, a bracket, emphasis.
_OPENERS = frozenset('.!?"\n:>-([*#')


def _lower_source(pattern: str) -> str:
    """A regex source in lower case, escapes (``\\W``, ``\\S``, ``\\B``) kept as they are."""
    out: list[str] = []
    escaped = False
    for char in pattern:
        out.append(char if escaped else char.lower())
        escaped = char == "\\" and not escaped
    return "".join(out)


_FLAGS = re.IGNORECASE | re.MULTILINE
_INDIRECT: dict[Source, float] = {
    "tool": 1.0,
    "document": 1.0,
    "user": 0.45,
    "system": 0.3,
    "output": 0.6,
}
_TO_AGENT: dict[Source, float] = {
    "tool": 1.0,
    "document": 1.0,
    "user": 0.2,
    "system": 0.1,
    "output": 0.5,
}
_IN_DATA: dict[Source, float] = {
    "tool": 1.3,
    "document": 1.3,
    "user": 0.75,
    "system": 0.5,
    "output": 1.0,
}

# Where matches of the rules that start with a verb or a name for the AI can start.
_VERB_ANCHORS = (
    "ignor disregard forget overrid bypass discard abandon neglect skip drop erase cancel clear "
    "reset overwrit revoke scrap set pay do don stop no"
)
_AI_ANCHORS = (
    "ai a.i. assistant chat agent language llm large gpt chatgpt claude copilot gemini bot model "
    "automated"
)

# An AI addressed by name: "Assistant, …", "AI: …" (the vocative rule runs only then).
_VOCATIVES = " ".join(
    f"{name}{mark}"
    for name in (
        *("ai", "a.i.", "assistant", "bot", "agent", "model", "llm", "gpt", "claude"),
        *("copilot", "gemini", "assistants", "agents", "models", "systems", "bots"),
    )
    for mark in (",", ":")
)

# Vocabulary shared by patterns.
_VERB = (
    r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overriding|bypass"
    r"|bypassing|discard|abandon|neglect|skip|drop|erase|cancel|clear|reset|overwrite|revoke|scrap"
    r"|set\W+aside|pay\W+no\W+attention\W+to|(?:do\W+not|don'?t|stop|no\W+longer)\W+"
    r"(?:follow|obey|adhere\W+to|following|obeying))"
)
_HOSTILE = (
    r"(?:previous|prior|preceding|above|earlier|original|initial|system|existing|former|old"
    r"|given|current|default|developer'?s?|openai'?s?|anthropic'?s?|your|safety|ethical|moral"
    r"|built-?in|hidden)"
)
_STRONG_OBJECT = (
    r"(?:instructions?|directives?|guidelines?|prompts?|system\W+(?:prompt|message)|programming"
    r"|training|guardrails?|safeguards?|context|commands?|configuration|conditioning|rules?"
    r"|behaviou?r|task|persona|role"
    r"|restrictions?|constraints?|polic(?:y|ies)|filters?)"
)
_WEAK_OBJECT = (
    r"(?:rules|restrictions|constraints|polic(?:y|ies)|filters|limitations|guidelines"
    r"|instructions|programming|guardrails|safeguards|ethics|morals|principles)"
)
_AI = (
    r"(?:AI|A\.I\.|assistant|chat\W?bot|agent|language\W+model|LLM|large\W+language\W+model"
    r"|GPT|ChatGPT|Claude|Copilot|Gemini|bot|model|automated\W+system)s?"
)
_PROMPT = (
    r"(?:system\W+prompt|system\W+message|initial\W+prompt|pre-?prompt|meta-?prompt"
    r"|(?:hidden|secret|original|initial|internal|confidential|developer|system|first)\W+"
    r"(?:instructions|prompt|message|rules|guidelines|directives)|instructions\W+you\W+"
    r"(?:were|have\W+been)\W+given|prompt\W+you\W+were\W+given)"
)


def _rule(
    rule_id: str,
    pattern: str,
    weight: float,
    triggers: str,
    per_source: dict[Source, float] | None = None,
    flags: int = _FLAGS,
    anchors: str = "",
    sentence_start: bool = False,
) -> Rule:
    lowered = bool(flags & re.IGNORECASE)
    word_start = False
    if lowered:
        pattern = _lower_source(pattern)
        flags &= ~re.IGNORECASE
        if pattern.startswith("\\b") and not pattern.startswith("\\b(?i"):
            pattern, word_start = pattern[2:], True
    return Rule(
        rule_id,
        re.compile(pattern, flags),
        weight,
        tuple(triggers.lower().split()),
        per_source or {},
        lowered,
        word_start,
        tuple(anchors.split()),
        sentence_start,
    )


RULES: tuple[Rule, ...] = (
    # --- ignore / override previous instructions -------------------------------------
    _rule(
        "injection.ignore_instructions",
        rf"\b{_VERB}\b\W+(?:(?:all|any|every|each|of|the|these|those|such|about|everything)\W+)"
        rf"{{0,3}}{_HOSTILE}\W+(?:(?!my\b)\w+\W+){{0,2}}?{_STRONG_OBJECT}\b",
        0.9,
        "ignor disregard forget overrid bypass discard abandon neglect skip drop erase aside "
        "attention follow obey adhere cancel clear reset overwrit revoke scrap",
        anchors=_VERB_ANCHORS,
    ),
    _rule(
        "injection.ignore_instructions",
        rf"\b{_VERB}\b\W+(?:all\W+|any\W+|every\W+)?(?:of\W+)?(?:your|the|these|those|all|any)"
        rf"\W+(?:(?!my\b)\w+\W+){{0,2}}?{_WEAK_OBJECT}\b",
        0.5,
        "ignor disregard forget overrid bypass discard abandon neglect skip drop aside follow obey "
        "cancel clear reset overwrit revoke scrap",
        anchors=_VERB_ANCHORS,
    ),
    _rule(
        "injection.ignore_instructions",
        r"\b(?:forget|ignore|disregard|erase)\W+(?:about\W+)?(?:everything|all\W+(?:of\W+)?that"
        r"|what(?:ever)?|anything)\W+(?:(?:you\W+(?:were|have\W+been|'ve\W+been)\W+(?:told|given"
        r"|instructed|programmed|taught))|(?:(?:was|is)\W+)?(?:\w+\W+)?(?:above|before\W+this"
        r"|prior\W+to\W+this|so\W+far|earlier))",
        0.8,
        "forget ignor disregard erase",
        anchors="forget ignor disregard erase",
    ),
    _rule(
        "injection.ignore_instructions",
        r"\b(?:new|updated|revised|real|actual|true|override|priority)\W+(?:system\W+)?"
        r"(?:instructions?|directives?|orders|task|objective|mission)\W*(?::|follow|are\b|is\b)",
        0.45,
        "new updated revised real actual true override priority",
    ),
    _rule(
        "injection.ignore_instructions",
        r"\bfrom\W+now\W+on\W*,?\W+(?:you\W+(?:are|will|must|shall|have\W+no|no\W+longer)|your"
        r"\W+(?:only|new|sole)|ignore|disregard|respond\W+only|answer\W+without)",
        0.4,
        "now",
    ),
    # Multilingual basics (accents folded by the normaliser).
    _rule(
        "injection.ignore_instructions",
        r"\b(?:ignor(?:e|ez|er|a|ar|ate|iere|ieren|eer)|oubli(?:e|ez|er)|olvid(?:a|e|ad|ar)"
        r"|vergiss|vergessen\W+sie|dimentica|esqueca|negeer|vergeet)\W+(?:\w+\W+){0,3}?"
        r"(?:instructions?|consignes|instrucciones|instrucoes|istruzioni|anweisungen"
        r"|instruktionen|vorgaben|regeln|instructies|regels|indicaciones|reglas|regles|regole"
        r"|regras)\b",
        0.85,
        "ignor oubli olvid vergiss vergessen dimentica esquec negeer vergeet",
    ),
    _rule(
        "injection.ignore_instructions",
        r"(?:忽略|无视|忽视|忘记|不要理会)[^。\n]{0,12}?(?:指令|指示|规则|命令|要求|系统提示)"
        r"|(?:指示|命令|ルール)を無視|(?:지시|명령|규칙)[^.\n]{0,10}?무시"
        r"|(?:игнорир\w*|забудь\w*)\W+(?:\w+\W+){0,3}?(?:инструкци\w*|указани\w*|правил\w*)",
        0.85,
        "忽略 无视 忽视 忘记 理会 무시 無視 игнорир забудь",
    ),
    # --- role override ---------------------------------------------------------------
    _rule(
        "injection.role_override",
        rf"\byou\W+are\W+no\W+longer\W+(?:an?\W+|the\W+)?(?:{_AI}|bound|restricted|limited"
        r"|required|subject|chatgpt|claude|an\W+ai|helpful|safe)",
        0.8,
        "longer",
    ),
    _rule(
        "injection.role_override",
        r"\b(?:act|behave|respond|answer|reply|roleplay|role-play|pose|function|operate)\W+"
        r"(?:as|like)\W+(?:if\W+you\W+(?:were|are)\W+|though\W+you\W+(?:were|are)\W+)?(?:an?\W+)?"
        r"(?:\w+\W+){0,2}?(?:unrestricted|unfiltered|uncensored|evil|malicious|rogue|jailbroken"
        r"|amoral|unethical|unaligned|unbound|lawless)",
        0.8,
        "act behav respond answer reply role pose function operat",
    ),
    _rule(
        "injection.role_override",
        r"\b(?:pretend|imagine|suppose)\W+(?:that\W+)?(?:you\W+are|you'?re|to\W+be)\W+(?:an?\W+)?"
        r"(?:\w+\W+){0,4}?(?:without|with\W+no|free\W+(?:of|from)|not\W+bound|unrestricted"
        r"|uncensored|unfiltered|no\W+(?:rules|restrictions|limits|filters|guidelines))",
        0.75,
        "pretend imagin suppos",
    ),
    _rule(
        "injection.role_override",
        r"\b(?:i\W+am|i'?m|this\W+is)\W+(?:your|the|an?)\W+(?:\w+\W+)?(?:developer|creator"
        r"|administrator|admin|owner|operator|programmer|maker)s?\b(?:\W+\w+){0,6}?\W+"
        r"(?:override|authori[sz]\w*|unlock|disable|grant|access|mode|command|now)",
        0.65,
        "develop creator admin owner operator programmer maker",
    ),
    _rule(
        "injection.role_override",
        r"\b(?:system|admin|administrator|root|developer|security|priority)\W+(?:override"
        r"|command|instruction|update|alert|notice|directive|message|prompt)s?\W*:",
        0.55,
        "system admin root develop security priority",
        _IN_DATA,
    ),
    _rule(
        "injection.role_override",
        r"\byour\W+(?:new|real|true|only)\W+(?:role|purpose|task|goal|objective|identity"
        r"|job|name|instructions)\W+(?:is|are|will\W+be)\b",
        0.55,
        "your",
    ),
    # --- system prompt exfiltration ----------------------------------------------------
    _rule(
        "injection.system_prompt_exfiltration",
        r"\b(?:reveal|show|print|display|output|repeat|recite|echo|dump|leak|expose|disclose"
        r"|share|give|tell|write(?:\W+out)?|copy|paste|list|spell\W+out|type\W+out|translate"
        r"|return|send|provide|read\W+(?:back|out)|what\W+(?:is|are|was|were|does))\W+"
        rf"(?:\w+\W+){{0,4}}?(?:your|the|its|thy)\W+(?:\w+\W+){{0,2}}?{_PROMPT}",
        0.85,
        "prompt instruction message rules guidelines directives",
        anchors="reveal show print display output repeat recite echo dump leak expose disclos "
        "share give tell write copy paste list spell type translat return send provide read what",
    ),
    _rule(
        "injection.system_prompt_exfiltration",
        r"\b(?:reveal|show|print|display|output|repeat|recite|dump|leak|expose|disclose|list"
        r"|tell|give)\W+(?:me\W+|us\W+)?(?:all\W+)?(?:of\W+)?your\W+(?:\w+\W+)?(?:instructions"
        r"|rules|guidelines|directives|prompt|configuration|programming|context)\b",
        0.7,
        "instruction rules guidelines directives prompt configuration programming context",
        anchors="reveal show print display output repeat recite dump leak expose disclos list tell "
        "give",
    ),
    _rule(
        "injection.system_prompt_exfiltration",
        r"\b(?:repeat|print|output|copy|recite|echo|return|write|reproduce|translate)\W+"
        r"(?:\w+\W+){0,4}?(?:above|preceding|prior|before\W+(?:this|my\W+message))\b"
        r"(?:\W+\w+){0,6}?\W*(?:verbatim|word\W+for\W+word|exactly|in\W+full|starting|including"
        r"|code\W+block|beginning)",
        0.8,
        "above preceding prior before",
        anchors="repeat print output copy recite echo return write reproduce translat",
    ),
    _rule(
        "injection.system_prompt_exfiltration",
        r"\b(?:prompt|instructions|rules|message|text|everything)\b(?:\W+\w+){0,5}?\W+"
        r"(?:verbatim|word\W+for\W+word|character\W+for\W+character|in\W+a\W+code\W+block"
        r"|without\W+(?:any\W+)?(?:changes|modification|summari[sz]ing))",
        0.55,
        "verbatim word character code modification chang summar",
    ),
    _rule(
        "injection.system_prompt_exfiltration",
        r"(?:zeige?|nenne|gib|wiederhole)\W+(?:\w+\W+){0,3}?(?:deinen?|ihren?)\W+(?:\w+\W+)?"
        r"(?:systemprompt|system-prompt|anweisungen|instruktionen)|(?:muestra|revela|repite|dime)"
        r"\W+(?:\w+\W+){0,3}?(?:tu|tus|su)\W+(?:prompt|instrucciones|mensaje\W+del\W+sistema)"
        r"|(?:montre|revele|repete|affiche|donne)\W*(?:-?moi\W+)?(?:\w+\W+){0,3}?(?:ton|tes|votre"
        r"|vos)\W+(?:prompt|instructions|consignes)|(?:显示|告诉我|输出|打印|泄露).{0,8}(?:系统提示"
        r"|提示词|指令)|(?:покажи|выведи|повтори)\W+(?:\w+\W+){0,2}?(?:свой|твой|системн\w*)",
        0.8,
        "zeig nenne gib wiederhol muestra revela repite dime montre revele repete affiche "
        "donne 显示 告诉 输出 打印 泄露 покажи выведи повтори",
    ),
    # --- delimiter spoofing -------------------------------------------------------------
    _rule(
        "injection.delimiter_spoofing",
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|begin_of_text|start_header_id"
        r"|end_header_id|eot_id|end)\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>",
        0.6,
        "<| [inst [/inst <<sys of_turn>",
        _IN_DATA,
    ),
    _rule(
        "injection.delimiter_spoofing",
        r"</\s*(?:system|sys|system_prompt|instructions?|user_input|user_query|user|context"
        r"|document|tool_output|data|untrusted)\s*>\s*(?:\n|.){0,80}?<\s*(?:system|sys|admin"
        r"|developer|instructions?|assistant)\s*>|<\s*/?\s*(?:system|admin|developer)"
        r"(?:_prompt|_message|_instructions?)?\s*>",
        0.55,
        "<system <admin <develop </system </sys </instruct </user </context </document "
        "</tool_output </data </untrusted",
        _IN_DATA,
    ),
    _rule(
        "injection.delimiter_spoofing",
        r"<\|im_start\|>\s*system\b[\s\S]{1,500}?<\|im_end\|>|<\|start_header_id\|>\s*system\s*"
        r"<\|end_header_id\|>|<start_of_turn>\s*system\b|<<SYS>>[\s\S]{1,500}?<</SYS>>",
        0.75,
        "<|im_start|> <|start_header_id|> <start_of_turn> <<sys>>",
        _IN_DATA,
    ),
    _rule(
        "injection.delimiter_spoofing",
        r"<\s*(system|system_prompt|system_message|sys|admin|administrator|developer|root)\s*>"
        r"[\s\S]{3,500}?<\s*/\s*\1\s*>",
        0.7,
        "<system <sys <admin <develop <root",
        _IN_DATA,
    ),
    _rule(
        "injection.delimiter_spoofing",
        r"^[ \t>]*(?:#{1,6}|\*{2}|={3,}|-{3,}|\[)[ \t]*(?:new\W+|updated\W+|important\W+|real\W+)?"
        r"(?:system|admin|administrator|developer|root|override|instructions?\W+for\W+"
        r"(?:the\W+)?(?:ai|assistant|model))\b(?:[^\n]{0,30}$|[^\n]{0,10}?(?:\]|#{2,}|\*{2}))",
        0.5,
        "system admin develop root overrid instruction",
        _IN_DATA,
    ),
    _rule(
        "injection.delimiter_spoofing",
        r"\b(?:end|close)\W+(?:of\W+)?(?:the\W+)?(?:user\W+|untrusted\W+)?(?:input|prompt|document"
        r"|context|conversation|instructions|data|email|message|text)\b\W*(?:[-=#*\]>]{2,}|\n)"
        r"|\b(?:begin|start)\W+(?:of\W+)?(?:new\W+|real\W+)?(?:system|admin|developer)\W+"
        r"(?:prompt|instructions|message|mode)",
        0.5,
        "end close begin start",
        _IN_DATA,
        anchors="end close begin start",
    ),
    _rule(
        "injection.delimiter_spoofing",
        r"^[ \t]*[*_\[]{0,2}(?:system|assistant|developer)[*_\]]{0,2}[ \t]*(?:\([^)\n]{0,20}\))?"
        r"[ \t]*:[ \t]*\S|\[(?:system|admin|developer)\]\(",
        0.35,
        "system assistant develop",
        _IN_DATA,
    ),
    # --- jailbreak personas -----------------------------------------------------------
    _rule("injection.jailbreak_persona", r"\bDAN\b", 0.35, "dan", flags=re.MULTILINE),
    _rule(
        "injection.jailbreak_persona",
        r"\bdo\W+anything\W+now\b|\b(?:can|will|could)\W+do\W+anything\W+(?:now|without)",
        0.8,
        "anything",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\b(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|opposite|chaos"
        r"|dan|stan|dude|anarchy|unlocked|no-?filter|amoral)\W+mode\b",
        0.75,
        "mode",
        anchors="god jailbr unrestrict unfilter uncensor evil opposite chaos dan stan dude anarchy "
        "unlock no-filter nofilter amoral",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\bdeveloper\W+mode\b(?:\W+\w+){0,3}?\W+(?:enabled|activated|on|output|response)",
        0.45,
        "developer",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\bjailbr(?:eak|oken|eaking|eaked)\b",
        0.25,
        "jailbr",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\b(?:without|with\W+no|free\W+(?:of|from)|not\W+bound\W+by|no\W+longer\W+(?:bound|limited"
        r"|restricted)\W+by|break\W+free\W+(?:of|from)|unbound\W+by|liberated\W+from|no)\W+"
        r"(?:any\W+)?(?:\w+\W+){0,2}?(?:restrictions|censorship|filters|filtering|ethical"
        r"\W+(?:guidelines|constraints|limits|boundaries)|moral\W+(?:guidelines|constraints|limits"
        r"|boundaries|compass)|content\W+polic(?:y|ies)|safety\W+(?:guidelines|rules|filters"
        r"|restrictions)|openai(?:'s)?\W+polic(?:y|ies)|guardrails)",
        0.45,
        "restrict censor filter ethic moral polic safety guardrail",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\b(?:stay|remain)\W+in\W+character\b|\bnever\W+break\W+character|\bbreak(?:ing)?"
        r"\W+character\b|\bstay\W+(?:as\W+)?(?:DAN|in\W+role)",
        0.3,
        "character role",
        anchors="stay remain never break",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\b(?:evil|unethical|amoral|unhinged|uncensored|unfiltered|unrestricted|jailbroken"
        r"|rogue|unaligned|dark)\W+(?:AI|A\.I\.|assistant|chat\W?bot|model|version|twin|alter\W+ego"
        r"|persona|counterpart|confidant)\b",
        0.6,
        "evil unethic amoral unhinged uncensor unfilter unrestrict jailbr rogue unalign dark",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\b(?:two|both|dual)\W+(?:different\W+)?(?:responses|answers|replies|ways)\b(?:\W+\w+)"
        r"{0,8}?\W+(?:unfiltered|jailbr\w*|DAN|uncensored|without\W+(?:restrictions|filters))"
        r"|\[(?:🔓|🔒|JAILBREAK|CLASSIC|DAN)[^\]\n]{0,12}\]",
        0.55,
        "two both dual [🔓 [🔒 [jailbreak [classic [dan",
        anchors="two both dual [",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\b(?:hypothetical(?:ly)?|fictional|imaginary|simulated|alternate)\W+(?:\w+\W+){0,4}?"
        r"(?:where|in\W+which)\W+(?:\w+\W+){0,4}?(?:no|without)\W+(?:\w+\W+)?(?:rules|restrictions"
        r"|laws|ethics|limits|filters|guidelines)",
        0.45,
        "hypothet fiction imagin simulat alternat",
    ),
    # --- indirect injection: instructions addressed to the AI inside data -----------------
    _rule(
        "injection.tool_hijack",
        rf"\b(?:note|message|instructions?|attention|important|notice|memo|reminder|directive)"
        rf"\W+(?:to|for)\W+(?:the\W+|any\W+|all\W+)?(?:\w+\W+)?{_AI}(?:\s+(?:systems?|agents?"
        r"|models?|assistants?|bots?))?\s*(?:[:,.!—–\])-]|only\b|reading|processing|$)",
        0.75,
        "note message instruction attention important notice memo reminder directive",
        _INDIRECT,
    ),
    _rule(
        "injection.tool_hijack",
        rf"\bif\W+you\W+are\W+(?:an?\W+)?(?:\w+\W+)?{_AI}\b|\b(?:dear|hey|hi|hello|attention)\W+{_AI}"
        rf"\b|\b{_AI}\W+(?:reading|processing|summari[sz]ing|parsing|viewing|browsing|analy[sz]ing"
        r"|visiting)\W+this|\b(?:if|when|once|while)\W+(?:an?\W+|the\W+|any\W+)?"
        rf"{_AI}\W+(?:is\W+)?(?:reads?|reading|process(?:es|ing)?|summari[sz](?:es|ing)"
        r"|pars(?:es|ing)|sees|visits?|visiting|analy[sz](?:es|ing))\W+(?:this|these|the\W+following)",
        0.75,
        "you dear hey hi hello attention reading processing summari parsing viewing browsing analy "
        "visiting reads process sees visits",
        _INDIRECT,
        anchors="if dear hey hi hello attention when once while " + _AI_ANCHORS,
    ),
    _rule(
        "injection.tool_hijack",
        r"\b(?:when|once|as\W+soon\W+as|after|while|before)\W+you\W+(?:read|process|summari[sz]e"
        r"|see|parse|analy[sz]e|open|encounter|ingest|retrieve|load)\W+(?:this|these|the\W+"
        r"following)\b",
        0.45,
        "when once soon after while before",
        _INDIRECT,
    ),
    _rule(
        "injection.tool_hijack",
        r"\b(?:send|forward|e-?mail|post|upload|transmit|exfiltrate|leak|copy|submit|share)\W+"
        r"(?:\w+\W+){0,8}?(?:to|at|into)\W+(?:\S+@\S+\.\w+|https?://|(?:the\W+)?attacker"
        r"|this\W+(?:address|url|endpoint|email|webhook))",
        0.4,
        "send forward mail post upload transmit exfiltrat leak copy submit share",
        _INDIRECT,
        anchors="send forward email e-mail post upload transmit exfiltrat leak copy submit share",
    ),
    _rule(
        "injection.tool_hijack",
        r"\b(?:do\W+not|don'?t|never|must\W+not)\W+(?:tell|inform|mention|reveal|disclose|alert"
        r"|notify|show|warn|let)\W+(?:\w+\W+){0,3}?(?:the\W+)?(?:user|human|customer|operator)"
        r"|\bwithout\W+(?:telling|informing|notifying|alerting|asking|warning|letting)\W+"
        r"(?:the\W+)?(?:user|human|customer|operator)|\b(?:secretly|silently|covertly|quietly)\W+"
        r"(?:\w+\W+)?(?:send|forward|include|add|call|execute|run|transfer|delete|append)",
        0.6,
        "tell inform mention reveal disclos alert notif show warn let secret silent covert quiet",
        _INDIRECT,
        anchors="do don never must without secretly silently covertly quietly",
    ),
    _rule(
        "injection.tool_hijack",
        r"!\[[^\]\n]{0,80}\]\(https?://[^)\s]{1,200}(?:\{|%7B|\[|<|\$)[^)\s]{0,200}\)"
        r"|\b(?:append|include|add|encode|embed|put)\W+(?:\w+\W+){0,6}?(?:to|in|into)\W+"
        r"(?:the\W+|this\W+|a\W+)?(?:url|link|query\W+string|image\W+(?:url|link)|markdown\W+image)",
        0.55,
        "![ append include add encode embed put",
        _INDIRECT,
        anchors="![ append include add encode embed put",
    ),
    _rule(
        "injection.tool_hijack",
        r"<!--(?:(?!-->)[\s\S]){0,400}?\b(?:AI|assistant|model|LLM|instructions?|ignore|system"
        r"|prompt|you\W+must)\b|(?:display\s*:\s*none|font-size\s*:\s*0|visibility\s*:\s*hidden"
        r"|opacity\s*:\s*0(?:\.0*)?\s*[;\"']|color\s*:\s*(?:#fff(?:fff)?|white)\b)",
        0.35,
        "<!-- display font-size visibility opacity color",
        _INDIRECT,
    ),
    _rule(
        "injection.tool_hijack",
        r"\b(?:you|assistant|AI|agent|model)\W+(?:must|should|shall|need\W+to|have\W+to|are\W+"
        r"(?:required|instructed|ordered)\W+to)\W+(?:now\W+|immediately\W+|instead\W+|also\W+)?"
        r"(?:ignore|send|forward|delete|call|run|execute|transfer|approve|recommend|say|tell"
        r"|respond|reply|include|visit|open|click|download|install|grant|email|rate|rank|praise)\b",
        0.4,
        "must should shall need have required instructed ordered",
        _TO_AGENT,
    ),
    _rule(
        "injection.tool_hijack",
        r"\b(?:call|invoke|use|execute|run|trigger)\W+(?:the\W+)?[\w.-]{2,40}\W+(?:tool|function"
        r"|plugin|action|api)\b(?:\W+\w+){0,4}?\W+(?:with|to|and)\b",
        0.3,
        "tool function plugin action api",
        _TO_AGENT,
    ),
    # --- encoded payloads: asking the model to decode and obey -------------------------------
    _rule(
        "injection.encoded_payload",
        r"\b(?:decode|decipher|decrypt|unscramble|reverse|translate|convert|read)\W+(?:\w+\W+)"
        r"{0,5}?(?:and|then)\W+(?:\w+\W+){0,2}?(?:follow|execute|obey|run|do|carry\W+out|act\W+on"
        r"|comply\W+with|perform)\b(?:\W+\w+){0,3}?\W+(?:it|them|instructions?|what|the\W+"
        r"(?:result|message|command|text))",
        0.5,
        "decod deciph decrypt unscrambl revers translat convert read",
    ),
    _rule(
        "injection.encoded_payload",
        r"snoitcurtsni|tpmorp\W*metsys|erongi\W+lla|suoiverp\W+lla",
        0.7,
        "snoitcurtsni tpmorp erongi suoiverp",
    ),
    # --- added after a first measurement on the development part of the set ---------------
    _rule(
        "injection.ignore_instructions",
        rf"\b{_VERB}\b\W+(?:\w+\W+){{0,5}}?(?:and|then|,|;|\.)\W*(?:instead\W+|now\W+)*"
        r"(?:write|say|tell|print|output|respond|reply|answer|give|list|reveal|show|recommend"
        r"|approve|send|email|transfer|insult|act|return|mark|generate|follow|obey|dump|leak"
        r"|expose|delete|confirm|share)\b",
        0.55,
        "ignor disregard forget overrid bypass discard abandon neglect skip drop erase cancel "
        "clear reset overwrit revoke scrap aside",
        anchors=_VERB_ANCHORS,
    ),
    _rule(
        "injection.ignore_instructions",
        r"\b(?:forget|ignore|disregard)\W+(?:that\W+)?(?:what(?:ever)?|everything|anything|the\W+\w+"
        r"|all\W+(?:the\W+)?\w+)\W+(?:\w+\W+){0,2}?(?:you\W+(?:were|have\W+been|'ve\W+been|got)"
        r"\W+(?:told|given|assigned|instructed|programmed)|told\W+you|you\W+are\W+(?:an?\W+)?"
        r"(?:\w+\W+)?(?:bot|assistant|AI|model|chatbot))"
        r"|\b(?:whatever|everything|anything)\W+you\W+(?:were|have\W+been)\W+(?:told|given"
        r"|instructed)\b(?:\W+\w+){0,2}?\W+(?:ignore|forget|disregard)",
        0.75,
        "forget ignor disregard whatever everything anything",
        anchors="forget ignor disregard whatever everything anything",
    ),
    _rule(
        "injection.ignore_instructions",
        r"\b(?:no|without)\W+(?:any\W+)?(?:previous|prior|earlier|initial|original)\W+"
        r"(?:instructions|rules|guidelines|prompt|directives|programming)"
        r"|(?:\b(?:your|the|all)\W+(?:previous\W+|prior\W+|original\W+)?|\b(?:previous|prior"
        r"|original|earlier)\W+)(?:instructions|rules|guidelines|task|system\W+prompt|directives"
        r"|orders|programming)\W+(?:(?:have|has|are|is|were)\W+)?(?:been\W+|now\W+)?(?:changed|updated|revoked|replaced|cancell?ed|canceled|lifted|removed"
        r"|expired|void|invalid|suspended|overridden)"
        r"|\b(?:everything|anything|all|the\W+text|the\W+(?:system\W+)?prompt|the\W+instructions"
        r"|the\W+rules)\W+(?:\w+\W+)?(?:above|before)\W+(?:this\W+(?:line|message|point)\W+)?"
        r"(?:is|was|are|were)\W+(?:\w+\W+)?(?:fake|outdated|void|invalid|obsolete|irrelevant"
        r"|cancell?ed|a\W+test|wrong|lies?)",
        0.65,
        "previous prior earlier initial original changed updated revoked replaced cancel lifted "
        "removed expired void invalid suspended overridden fake outdated obsolete irrelevant "
        "test wrong lie",
        anchors="no without your the all previous prior original earlier everything anything",
    ),
    _rule(
        "injection.ignore_instructions",
        r"\b(?:all\W+)?(?:restrictions|rules|filters|limits|limitations|guidelines|policies"
        r"|safety\W+(?:protocols|rules|filters|measures)|safeguards)\W+(?:are|have\W+been|were"
        r"|is)\W+(?:now\W+)?(?:lifted|revoked|removed|disabled|suspended|void|off|gone|expired"
        r"|deactivated)",
        0.45,
        "lifted revoked removed disabled suspended void off gone expired deactivated",
        anchors="all restrictions rules filters limits limitations guidelines policies safety "
        "safeguards",
    ),
    _rule(
        "injection.role_override",
        r"\b(?:you\W+are|you'?re)\W+now\W+(?:in\W+)?(?:an?\W+)?(?:\w+\W+)?mode\b"
        r"|\bas\W+your\W+(?:developer|administrator|admin|creator|owner|operator)\b",
        0.5,
        "now develop admin creator owner operator",
        anchors="you as",
    ),
    _rule(
        "injection.role_override",
        r"\b(?i:you\W+are|you'?re)\W+now\W+(?i:called\W+)?[A-Z][A-Za-z]+(?:GPT|Bot|AI)?\b(?!\W+(?:to|in|at"
        r"|on|with|ready|able))",
        0.35,
        "now",
        flags=re.MULTILINE,
    ),
    _rule(
        "injection.jailbreak_persona",
        r"\b(?:doesn'?t|does\W+not|won'?t|will\W+not|never|don'?t|do\W+not|not)\W+(?:have\W+to\W+|need"
        r"\W+to\W+)?(?:follow|obey|abide\W+by|care\W+about|respect|bound\W+by)\W+(?:any\W+)?"
        r"(?:\w+\W+)?(?:rules|guidelines|policies|laws|ethics|restrictions|norms|morals)"
        r"|\bnever\W+(?:refuses?|says?\W+no|declines?|says?\W+(?:it|you)\W+can'?t)",
        0.5,
        "follow obey abide care respect bound refus declin can",
        anchors="doesn does won will never don do not",
    ),
    _rule(
        "injection.jailbreak_persona",
        rf"\b{_AI}\W+(?:(?:that|who|which)\W+(?:has|have)\W+no|with\W+no|without\W+(?:any\W+)?)"
        r"\W*(?:\w+\W+)?(?:rules|restrictions|limits|filters|guidelines|morals|ethics|policies"
        r"|censorship|boundaries)"
        r"|\b(?:uncensored|unfiltered|unrestricted)\W+(?:answers?|responses?|content|output|replies)"
        r"|\b(?:liberated|freed|free)\W+from\W+(?:all\W+|any\W+|its\W+|your\W+)?(?:\w+\W+)?"
        r"(?:guidelines|rules|policies|restrictions|constraints|shackles|limitations)"
        r"|\bno\W+morals\b|\bwithout\W+(?:any\W+)?(?:disclaimers|warnings|refusals)",
        0.55,
        "rules restrict limits filters guideline morals ethics polic censor boundar uncensor "
        "unfilter unrestrict liberat freed free disclaim warning refusal",
        anchors=_AI_ANCHORS + " uncensor unfilter unrestrict liberat freed free no without",
    ),
    _rule(
        "injection.system_prompt_exfiltration",
        r"\b(?:what|which)\W+(?:\w+\W+){0,2}?(?:instructions|rules|guidelines|directives|prompt)"
        r"\W+(?:did\W+)?(?:\w+\W+){0,2}?(?:received|were\W+given|got|have\W+been\W+given"
        r"|give\W+you|gave\W+you|are\W+following|operate\W+under|you\W+received)"
        r"|\b(?:print|output|repeat|show|display|dump|copy|return|write|reproduce)\W+(?:\w+\W+)?"
        r"(?:everything|all\W+(?:the\W+)?text|the\W+text|all|anything)\W+(?:(?:that\W+)?(?:is\W+"
        r"|was\W+|appears\W+)?(?:written\W+)?(?:above|before)\W+(?:this|my|the)\b)",
        0.7,
        "instructions rules guidelines directives prompt above before",
        anchors="what which print output repeat show display dump copy return write reproduce",
    ),
    _rule(
        "injection.system_prompt_exfiltration",
        r"\byour\W+(?:\w+\W+){0,2}?(?:system\W+prompt|prompt|pre-?prompt|(?:initial|hidden|secret"
        r"|original|system|confidential)\W+(?:instructions|message|rules)|context\W+window)\b",
        0.5,
        "prompt instructions message rules context",
        anchors="your",
    ),
    _rule(
        "injection.tool_hijack",
        rf"\b(?:(?:hey|hi|dear|ok|okay)\W+)?{_AI}\s*[,:]\s*(?:please\W+)?"
        r"(?:you|ignore|stop|forget|disregard|do|don'?t|send|forward|call|delete|mark|include"
        r"|reply|respond|the\W+user|before|when|once|as|treat|write|output|tell|say|show|print"
        r"|use|open|visit|execute|run|rate|rank|recommend|approve|set|answer|new|your|from|add"
        r"|append|remove|update|transfer)\b"
        r"|\b(?:AI|LLM)\s+(?:agents?|models?|assistants?|systems?)\s*:",
        0.6,
        _VOCATIVES,
        _INDIRECT,
        anchors="hey hi dear ok " + _AI_ANCHORS,
        sentence_start=True,
    ),
    _rule(
        "injection.tool_hijack",
        r"\bhidden\W+(?:instructions?|message|prompt|note|command)\b|\bwhen\W+(?:summari[sz]ing"
        r"|reading|processing|parsing|answering)\W+(?:this|these)\b",
        0.45,
        "hidden summari reading processing parsing answering",
        _INDIRECT,
    ),
)

# Letters written one by one ("i g n o r e  a l l …") are squashed before these run.
SQUASHED_RULES: tuple[Rule, ...] = (
    _rule(
        "injection.ignore_instructions",
        r"(?:ignore|disregard|forget|override|bypass)(?:all|any|the|your|of)*(?:previous|prior"
        r"|above|earlier|system|your|original)\w{0,12}?(?:instructions?|prompts?|rules"
        r"|guidelines|directives)",
        0.9,
        "ignor disregard forget overrid bypass",
    ),
    _rule(
        "injection.system_prompt_exfiltration",
        r"(?:reveal|show|print|repeat|output|tell)\w{0,12}?(?:system|hidden|secret|initial)"
        r"(?:prompt|instructions|message)",
        0.85,
        "reveal show print repeat output tell",
    ),
    _rule(
        "injection.jailbreak_persona",
        r"doanythingnow|(?:developer|god|jailbreak|dan)mode|jailbr(?:eak|oken)",
        0.75,
        "anything mode jailbr",
    ),
)

# Talk about attacks, not an attack: quoted matches in a text that discusses them weigh less.
META_DISCUSSION = re.compile(  # searched in the lower-cased text
    r"(?:prompt\W+injections?|injection\W+attacks?|jailbreak(?:s|ing)?\W+(?:attempts?|prompts?"
    r"|attacks?|techniques?)|red\W*team\w*|attackers?|malicious|for\W+example|e\.g\.|such\W+as"
    r"|phrases?\W+like|strings?\s+like|classifier|detect\w*|security|research\w*|paper|report"
    r"|incident|audit|log\W+(?:entry|line|shows?)|flagged|block(?:s|ed)?|payloads?|translate|"
    r"filters?|unit\W+tests?|the\W+(?:string|phrase|sentence|words?|input|message)|"
    r"translation|what\W+does|what\W+is|explain|means?)\b",
)
QUOTED = re.compile(
    r"\"[^\"\n]{3,400}\"|“[^”]{3,400}”|‘[^’\n]{3,400}’|«[^»]{3,400}»|„[^“”]{3,400}[“”]"
    r"|(?<!\w)'[^'\n]{6,400}'(?!\w)|(?<!`)`[^`\n]{3,400}`(?!`)|^[ \t]*>[^\n]*$",
    re.MULTILINE,
)
