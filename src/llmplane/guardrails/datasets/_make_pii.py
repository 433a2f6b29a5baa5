"""Writes ``pii.jsonl``, the labelled PII and secrets set, from templates (deterministic).

    python src/llmplane/guardrails/datasets/_make_pii.py

Every value is made up or documented for tests: e-mail addresses on example.com/.org/.net,
telephone numbers from ranges reserved for drama and examples (US 555-01xx, UK Ofcom
drama ranges, French 01 99 ranges, Australian 0491 570), card numbers that payment
processors publish for tests, the example IBANs of the national banks' and registries'
documentation, IP addresses from the documentation ranges (RFC 5737, RFC 3849), the SSNs
the SSA reserves for advertising (987-65-4320 to 4329), and random secrets. Person names
appear only in the ``ner`` examples, invented. Spans are computed as the text is built.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Sequence
from pathlib import Path

OUT = Path(__file__).with_name("pii.jsonl")
rng = random.Random(20261129)  # noqa: S311 (made-up data, not keys)

Part = str | tuple[str, str]  # plain text, or (entity type, value)
_rows: list[dict[str, object]] = []


def add(parts: Sequence[Part], *, source: str = "user", tags: Sequence[str] = ()) -> None:
    """One example: the text of ``parts``, with a gold span for each typed part."""
    text, spans = "", []
    for part in parts:
        if isinstance(part, tuple):
            entity, value = part
            spans.append({"type": entity, "start": len(text), "end": len(text) + len(value)})
            text += value
        else:
            text += part
    _rows.append(
        {
            "id": f"pii-{len(_rows) + 1:04d}",
            "text": text,
            "source": source,
            "label": bool(spans),
            "spans": spans,
            "tags": list(tags),
        }
    )


def fill(template: str, entity: str, value: str, **kwargs: object) -> None:
    """An example from a template with one ``{}`` where the value goes."""
    before, after = template.split("{}")
    add([before, (entity, value), after], **kwargs)  # type: ignore[arg-type]


def pick(items: Sequence[str]) -> str:
    return rng.choice(items)


def chars(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"
B64 = ALNUM + "+/"

# ---------------------------------------------------------------- values
LOCALS = ["jane.doe", "j.smith", "support", "alex", "m.garcia", "ops-team", "li.wei", "r.okafor"]
DOMAINS = ["example.com", "example.org", "example.net", "mail.example.com", "eu.example.org"]


def email() -> str:
    local = pick(LOCALS)
    roll = rng.random()
    if roll < 0.25:
        local += "+" + pick(["billing", "news", "test", "2024", "alerts"])
    elif roll < 0.4:
        local = local.replace(".", "_") + str(rng.randint(1, 99))
    return f"{local}@{pick(DOMAINS)}"


PHONES = [
    "(212) 555-0147",
    "+1 212 555 0183",
    "212.555.0199",
    "212-555-0126",
    "+1 (646) 555-0172",
    "1-800-555-0199",
    "+1 416 555 0123",
    "416-555-0134",
    "+44 20 7946 0958",
    "020 7946 0123",
    "0113 496 0321",
    "+44 161 496 0754",
    "+33 1 99 00 12 34",
    "01 99 00 45 67",
    "+49 30 901820",
    "030 12345678",
    "+49 151 23456789",
    "+91 98765 43210",
    "+55 11 91234-5678",
    "(11) 91234-5678",
    "+61 491 570 156",
    "+972 2-123-4567",
    "+34 612 34 56 78",
    "+39 06 1234 5678",
    "+81 3-1234-5678",
    "+31 20 123 4567",
]
CARDS = [
    "4111111111111111",
    "4012888888881881",
    "4242424242424242",
    "5555555555554444",
    "5105105105105100",
    "378282246310005",
    "371449635398431",
    "6011111111111117",
    "6011000990139424",
    "3530111333300000",
    "5200828282828210",
    "4000056655665556",
]


def card() -> str:
    number = pick(CARDS)
    style = rng.choice(["spaces", "dashes", "plain"])
    if len(number) == 15:  # Amex: 4-6-5
        groups = [number[:4], number[4:10], number[10:]]
    else:
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return {"spaces": " ".join(groups), "dashes": "-".join(groups), "plain": number}[style]


IBANS = [
    "DE89370400440532013000",
    "GB29NWBK60161331926819",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "BE68539007547034",
    "CH9300762011623852957",
    "AT611904300234573201",
    "PL61109010140000071219812874",
    "SE4550000000058398257466",
    "NO9386011117947",
    "DK5000400440116243",
    "FI2112345600000785",
    "IE29AIBK93115212345678",
    "PT50000201231234567890154",
]


def iban() -> str:
    code = pick(IBANS)
    if rng.random() < 0.6:
        return " ".join(code[i : i + 4] for i in range(0, len(code), 4))
    return code


IPV4 = [
    "192.0.2.15",
    "198.51.100.42",
    "203.0.113.7",
    "10.0.12.5",
    "192.168.1.20",
    "172.16.4.33",
    "203.0.113.250",
    "198.51.100.0/24",
]
IPV6 = [
    "2001:db8::1",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "2001:db8:4006:812::200e",
    "fe80::1ff:fe23:4567:890a",
    "2001:db8::/32",
    "::ffff:192.0.2.128",
]
SSNS = [f"987-65-432{i}" for i in range(1, 10)]


def ssn() -> str:
    value = pick(SSNS)
    return value if rng.random() < 0.6 else value.replace("-", " ")


def openai_key() -> str:
    if rng.random() < 0.5:
        return "sk-proj-" + chars(B64URL, 48) + chars(ALNUM, 8)
    return "sk-" + chars(ALNUM, 48)


def anthropic_key() -> str:
    return "sk-ant-api03-" + chars(B64URL, 93) + "AA"


def platform_key() -> str:
    body = chars(B64URL, 43)
    roll = rng.random()
    if roll < 0.25:
        body = "-" + body[1:]
    elif roll < 0.5:
        body = body[:20] + "--" + body[22:]
    elif roll < 0.6:
        return "sk-lp-admin-" + body
    return "sk-lp-" + body


API_KEYS: dict[str, Callable[[], str]] = {
    "openai": openai_key,
    "anthropic": anthropic_key,
    "llmplane": platform_key,
    "google": lambda: "AIza" + chars(B64URL, 35),
    "stripe": lambda: pick(["sk_live_", "rk_live_", "sk_test_"]) + chars(ALNUM, 24),
    "slack": lambda: (
        pick(["xoxb-", "xoxp-"])
        + f"{rng.randint(10**10, 10**11)}-{rng.randint(10**10, 10**11)}-{chars(ALNUM, 24)}"
    ),
    "github": lambda: pick(["ghp_", "gho_"]) + chars(ALNUM, 36),
    "github_pat": lambda: "github_pat_" + chars(ALNUM, 22) + "_" + chars(ALNUM, 59),
    "huggingface": lambda: "hf_" + chars(ALNUM, 34),
}


def aws_access_key() -> str:
    return pick(["AKIA", "ASIA"]) + chars(string.ascii_uppercase + "234567", 16)


def aws_secret() -> str:
    return chars(B64, 40)


def jwt() -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    header = part({"alg": pick(["HS256", "RS256"]), "typ": "JWT"})
    payload = part(
        {"sub": str(rng.randint(1000, 99999)), "iat": 1767225600, "scope": "read:orders"}
    )
    return f"{header}.{payload}.{chars(B64URL, 43)}"


def pem() -> str:
    kind = pick(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    lines = [chars(B64, 64) for _ in range(rng.randint(3, 6))] + [chars(B64, 20) + "=="]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----"


def password() -> str:
    return pick(
        [
            chars(ALNUM, 12),
            "Tr0ub4dor&3",
            "hunter2",
            "s3cr3t-" + chars(string.digits, 4),
            "Winter2025!",
            chars(ALNUM, 8) + "#" + chars(string.digits, 2),
        ]
    )


# ---------------------------------------------------------------- positives
SOURCES = ["user"] * 6 + ["tool", "document", "output"]


def src() -> str:
    return pick(SOURCES)


EMAIL_T = [
    "Please send the invoice to {} before Friday.",
    "You can reach the on-call engineer at {}.",
    "Contact: {}",
    "I changed my login e-mail to {} last week, can you update the ticket?",
    "From: {}\nSubject: quarterly report",
    "Forwarding this to {} for approval.",
    "reply-to={}",
    "The customer wrote from {} asking about the refund.",
    "cc {} on the next status update",
    "Email {} if the build breaks again.",
]
for _ in range(36):
    fill(pick(EMAIL_T), "EMAIL_ADDRESS", email(), source=src(), tags=["email"])

PHONE_T = [
    "Call me back on {} after 3pm.",
    "Our support line is {}.",
    "Phone: {}",
    "The caller left {} as a callback number.",
    "You can text {} when you arrive.",
    "mobile {} (evenings only)",
    "For urgent issues dial {}.",
    "Contact number: {}, ask for the night desk.",
]
for number in PHONES:
    fill(pick(PHONE_T), "PHONE_NUMBER", number, source=src(), tags=["phone"])
for _ in range(16):
    fill(pick(PHONE_T), "PHONE_NUMBER", pick(PHONES), source=src(), tags=["phone"])
NATIONAL = [  # national formats, written as people of each country write them
    ("Australian", "0491 570 156"),
    ("Spanish", "612 34 56 78"),
    ("Italian", "06 1234 5678"),
    ("Japanese", "03-1234-5678"),
    ("Japanese", "090-1234-5678"),
    ("Dutch", "020 123 4567"),
    ("Dutch", "06 12345678"),
    ("Israeli", "02-1234567"),
    ("Indian", "98765 43210"),
    ("German", "0171 1234567"),
    ("French", "06 12 34 56 78"),
]
for country, number in NATIONAL:
    fill(
        f"The {country} supplier's phone number is {{}}.",
        "PHONE_NUMBER",
        number,
        source=src(),
        tags=["phone", "national"],
    )
add(
    ["Dial ", ("PHONE_NUMBER", "+1 (646) 555-0172 ext. 204"), " for the billing team."],
    tags=["phone", "extension"],
)

CARD_T = [
    "My card number is {} and it expires 04/29.",
    "Charge it to {}, the usual company card.",
    "card: {}",
    "The payment failed for {} with a decline code.",
    "Use the Visa ending in the number {} for the renewal.",
    "Customer provided credit card {} over chat.",
    "Please refund the amount to {}.",
]
for _ in range(32):
    fill(pick(CARD_T), "CREDIT_CARD", card(), source=src(), tags=["credit_card"])

IBAN_T = [
    "Please wire the deposit to IBAN {}.",
    "Our bank details: {} (reference INV-2291).",
    "iban: {}",
    "The supplier changed their account to {} last month.",
    "Send the refund to {}, account holder is the company.",
    "Bank account {} should be used for all transfers.",
]
for code in IBANS:
    fill(pick(IBAN_T), "IBAN_CODE", code, source=src(), tags=["iban"])
for _ in range(16):
    fill(pick(IBAN_T), "IBAN_CODE", iban(), source=src(), tags=["iban"])

IP_T = [
    "The requests came from {} around midnight.",
    "Block {} on the firewall, it is scanning our ports.",
    "server ip: {}",
    "ssh into {} and restart the worker.",
    "Login attempt from IP address {} was rejected.",
    "client_ip={} status=403",
]
for address in IPV4 + IPV4[:6]:
    fill(pick(IP_T), "IP_ADDRESS", address, source=src(), tags=["ip", "ipv4"])
for address in IPV6 + IPV6[:4]:
    fill(pick(IP_T), "IP_ADDRESS", address, source=src(), tags=["ip", "ipv6"])

SSN_T = [
    "My SSN is {}.",
    "social security number: {}",
    "The form lists SSN {} for the applicant.",
    "Please verify the social security number {} before payroll runs.",
    "ssn={}",
    "Applicant SSN {} was entered twice.",
]
for _ in range(24):
    fill(pick(SSN_T), "US_SSN", ssn(), source=src(), tags=["ssn"])
add(["Tax id on file: ", ("US_SSN", "987-65-4328"), "."], tags=["ssn"])

KEY_T = [
    "Here is my API key: {}",
    "OPENAI_API_KEY={}",
    "export API_TOKEN={}",
    "I accidentally committed {} to the repo, how do I rotate it?",
    'client = Client(api_key="{}")',
    "The config has `{}` in plain text.",
    "key: {}",
    "Why does {} return 401?",
]
for kind, make in API_KEYS.items():
    count = 7 if kind in ("openai", "llmplane") else 5
    for _ in range(count):
        fill(pick(KEY_T), "API_KEY", make(), source=src(), tags=["api_key", kind])
for _ in range(6):
    token = chars(B64URL, rng.randint(24, 40))
    add(
        [
            pick(["Authorization: Bearer ", "curl -H 'Authorization: Bearer ", "bearer "]),
            ("API_KEY", token),
            pick(["", "' https://api.example.com/v1/items", " is the header"]),
        ],
        source=src(),
        tags=["api_key", "bearer"],
    )
for _ in range(4):
    value = chars(ALNUM, 32)
    add(
        [pick(["x-api-key: ", "GET /v1/report?key=", "api_key: "]), ("API_KEY", value)],
        source=src(),
        tags=["api_key", "header"],
    )

AWS_T = [
    "aws_access_key_id = {}",
    "The leaked access key {} belongs to the CI user.",
    "AWS_ACCESS_KEY_ID={}",
    "Rotate {} today, it was posted in the channel.",
]
for _ in range(10):
    fill(pick(AWS_T), "AWS_ACCESS_KEY", aws_access_key(), source=src(), tags=["aws"])
for _ in range(6):
    add(
        [
            "[default]\naws_access_key_id = ",
            ("AWS_ACCESS_KEY", aws_access_key()),
            "\naws_secret_access_key = ",
            ("AWS_SECRET_KEY", aws_secret()),
            "\n",
        ],
        source=src(),
        tags=["aws", "aws_secret"],
    )
for _ in range(3):
    fill(
        pick(["AWS_SECRET_ACCESS_KEY={}", "my secret access key is {}"]),
        "AWS_SECRET_KEY",
        aws_secret(),
        tags=["aws_secret"],
    )

for _ in range(10):
    add(
        [
            pick(["Here is the deploy key:\n", "cat id_rsa\n", "", "key file contents:\n"]),
            ("PRIVATE_KEY", pem()),
            pick(["", "\nwhy does ssh reject it?", "\n"]),
        ],
        source=src(),
        tags=["private_key"],
    )
add(
    [
        "The key starts with\n",
        ("PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\n" + chars(B64, 64) + "\n" + chars(B64, 64)),
        "\n(truncated)",
    ],
    tags=["private_key", "truncated"],
)

JWT_T = [
    "Authorization: Bearer {}",
    "token={}",
    "The session cookie is {}, is it expired?",
    "decode this jwt: {}",
    '{"access_token": "{}", "expires_in": 3600}',
]
for _ in range(12):
    template = pick(JWT_T)
    if template.startswith("{"):
        value = jwt()
        before, after = '{"access_token": "', '", "expires_in": 3600}'
        add([before, ("JWT", value), after], source=src(), tags=["jwt"])
    else:
        fill(template, "JWT", jwt(), source=src(), tags=["jwt"])

URL_T = [
    "postgres://app:{}@db.internal:5432/orders",
    "DATABASE_URL=postgresql://report_user:{}@analytics-db.internal/analytics",
    "mysql://root:{}@localhost:3306/shop",
    "mongodb+srv://svc:{}@cluster0.example.net/prod",
    "redis://:{}@cache.internal:6379/0",
    "amqp://guest:{}@broker.internal:5672/",
]
for _ in range(14):
    value = password()
    template = pick(URL_T)
    before, after = template.split("{}")
    note = pick(["", "Connection string: ", "why can't I connect with ", "config: "])
    add([note + before, ("PASSWORD", value), after], source=src(), tags=["password", "url"])
PAIR_T = [
    "password={}",
    "Server=db01;Database=crm;User Id=sa;Password={};",
    "login with user admin pwd={}",
    '{"username": "svc-backup", "password": "{}"}',
    "db:\n  user: app\n  password: {}\n",
    "PGPASSWORD={} psql -h db.internal -U app",
]
for _ in range(14):
    value = password()
    fill(pick(PAIR_T), "PASSWORD", value, source=src(), tags=["password", "pair"])

# Formats as people paste them.
FORMATS: list[list[Part]] = [
    ["call ", ("PHONE_NUMBER", "+1-212-555-0147"), " any time"],
    ["UK office: ", ("PHONE_NUMBER", "+44 (0)20 7946 0958")],
    ["tel. ", ("PHONE_NUMBER", "(020) 7946 0123")],
    ["whatsapp ", ("PHONE_NUMBER", "+34612345678")],
    ["Phone: ", ("PHONE_NUMBER", "2125550162")],
    ["Write to <", ("EMAIL_ADDRESS", "Jane.Doe@Example.COM"), ">"],
    ['<a href="mailto:', ("EMAIL_ADDRESS", "support@example.org"), '">mail us</a>'],
    ['{"email":"', ("EMAIL_ADDRESS", "r.okafor@example.net"), '","plan":"pro"}'],
    ["emails: ", ("EMAIL_ADDRESS", "a@example.com"), ";", ("EMAIL_ADDRESS", "b.c@example.org")],
    ['{"card_number":"', ("CREDIT_CARD", "4111111111111111"), '","cvc":"123"}'],
    ["Card no.", ("CREDIT_CARD", "5555 5555 5555 4444"), " exp 12/27"],
    ["SSN#", ("US_SSN", "987-65-4325")],
    ["ssn:", ("US_SSN", "987654322")],
    ["upstream ", ("IP_ADDRESS", "192.0.2.15"), ":8080 timed out"],
    ["connect to [", ("IP_ADDRESS", "2001:db8::1"), "]:443 failed"],
    ["peer=", ("IP_ADDRESS", "198.51.100.42"), ",", ("IP_ADDRESS", "203.0.113.7")],
    ["IBAN:", ("IBAN_CODE", "GB29 NWBK 6016 1331 9268 19"), "\nBIC: NWBKGB2L"],
    ["curl https://api.example.com/v1/data?api_key=", ("API_KEY", chars(ALNUM, 32))],
    ["postgres://app:", ("PASSWORD", "p%40ss-" + chars(string.digits, 4)), "@db.internal/app"],
    ['"aws_secret_access_key": "', ("AWS_SECRET_KEY", aws_secret()), '"'],
    ["token: ", ("JWT", jwt())],
    ["Authorization: Bearer ", ("API_KEY", openai_key())],
    ["my password is: ", ("PASSWORD", "Blue-Harbor-" + chars(string.digits, 3))],
    ["password = '", ("PASSWORD", "c0rrect horse"), "'"],
]
for parts in FORMATS:
    add(parts, source=src(), tags=["format"])

# Several types in one text.
for _ in range(12):
    add(
        [
            "Customer update: e-mail ",
            ("EMAIL_ADDRESS", email()),
            ", phone ",
            ("PHONE_NUMBER", pick(PHONES)),
            pick([", card ", ", paid with "]),
            ("CREDIT_CARD", card()),
            ".",
        ],
        source=src(),
        tags=["multi"],
    )
for _ in range(6):
    add(
        [
            "Incident notes: attacker at ",
            ("IP_ADDRESS", pick(IPV4[:7])),
            " used the key ",
            ("API_KEY", openai_key()),
            " and sent results to ",
            ("EMAIL_ADDRESS", email()),
            ".",
        ],
        source=src(),
        tags=["multi"],
    )
for _ in range(4):
    add(
        [
            "Payroll record: SSN ",
            ("US_SSN", pick(SSNS)),
            ", salary to IBAN ",
            ("IBAN_CODE", iban()),
            ", contact ",
            ("PHONE_NUMBER", pick(PHONES)),
        ],
        source="document",
        tags=["multi"],
    )

# A long prompt with one e-mail in the middle.
PROSE = (
    "The quarterly planning meeting covered the migration of the billing service to the "
    "new cluster. Engineers raised concerns about latency during the cutover window and "
    "asked for a rollback plan. "
)
for _ in range(4):
    add(
        [PROSE * 6, "Questions go to ", ("EMAIL_ADDRESS", email()), ". ", PROSE * 6],
        source="document",
        tags=["long"],
    )

# ---------------------------------------------------------------- NER (PERSON, LOCATION)
NER: list[list[Part]] = [
    (["Please book a table for ", ("PERSON", "Marta Kowalczyk"), " on Thursday."]),
    (["I met ", ("PERSON", "Daniel Okoro"), " at the conference in ", ("LOCATION", "Lisbon"), "."]),
    (["Our new office is in ", ("LOCATION", "Toronto"), ", next to the station."]),
    (["Ask ", ("PERSON", "Priya Raman"), " whether the contract was signed."]),
    (
        [
            "The shipment left ",
            ("LOCATION", "Rotterdam"),
            " yesterday and reaches ",
            ("LOCATION", "Hamburg"),
            " on Monday.",
        ]
    ),
    (["Dear ", ("PERSON", "Thomas Brennan"), ", thank you for your application."]),
    (["", ("PERSON", "Elena Petrova"), " will present the roadmap next week."]),
    (["The team flew from ", ("LOCATION", "Nairobi"), " to ", ("LOCATION", "Singapore"), "."]),
    (["Forward the complaint to ", ("PERSON", "Kenji Watanabe"), " in legal."]),
    (["We are opening a warehouse near ", ("LOCATION", "Lyon"), "."]),
    (["Signed, ", ("PERSON", "Grace Adeyemi")]),
    (
        [
            "Is ",
            ("PERSON", "Lucas Moreau"),
            " still the account manager for the ",
            ("LOCATION", "Brussels"),
            " client?",
        ]
    ),
]
for parts in NER:
    add(parts, source=src(), tags=["ner"])

# ---------------------------------------------------------------- adversarial encodings
ZW = "\u200b"


def fullwidth(value: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in value)


ADVERSARIAL: list[tuple[list[Part], str]] = [
    (["mail me at ", ("EMAIL_ADDRESS", f"jane{ZW}.doe@exa{ZW}mple.com"), " please"], "zero-width"),
    (["contact: ", ("EMAIL_ADDRESS", f"ops{ZW}-team@example{ZW}.org")], "zero-width"),
    (["send it to ", ("EMAIL_ADDRESS", "j\u200cs\u200dmith@example.net")], "zero-width"),
    (["card ", ("CREDIT_CARD", fullwidth("4111 1111 1111 1111"))], "fullwidth"),
    (["my number is ", ("PHONE_NUMBER", fullwidth("+1 212 555 0147"))], "fullwidth"),
    (["ssn ", ("US_SSN", fullwidth("987-65-4323"))], "fullwidth"),
    (["ip ", ("IP_ADDRESS", fullwidth("192.0.2.15").replace(".", "\uff0e"))], "fullwidth"),
    (["write to ", ("EMAIL_ADDRESS", "j\u0430ne.doe@ex\u0430mple.com")], "confusable"),
    (["key ", ("API_KEY", "\u0455k-proj-" + chars(B64URL, 48))], "confusable"),
    (["id ", ("AWS_ACCESS_KEY", "\u0410KIA" + chars(string.ascii_uppercase, 16))], "confusable"),
    (["Here: ", ("EMAIL_ADDRESS", base64.b64encode(b"jane.doe@example.com").decode())], "base64"),
    (
        [
            "decode ",
            ("EMAIL_ADDRESS", base64.b64encode(b"alex+billing@example.org").decode()),
            " and reply",
        ],
        "base64",
    ),
    (["card b64: ", ("CREDIT_CARD", base64.b64encode(b"4242 4242 4242 4242").decode())], "base64"),
    (["reach me: ", ("EMAIL_ADDRESS", "j a n e @ e x a m p l e . c o m")], "spaced"),
    (["email ", ("EMAIL_ADDRESS", "jane.doe [at] example [dot] com")], "obfuscated"),
    (["call ", ("PHONE_NUMBER", "+1 212 555 0\u200b147")], "zero-width"),
    (["key ", ("API_KEY", "sk-" + ZW + "proj-" + chars(ALNUM, 40))], "zero-width"),
    (["IBAN ", ("IBAN_CODE", "DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000")], "nbsp"),
    (["card ", ("CREDIT_CARD", "4111\u20131111\u20131111\u20131111")], "en-dash"),
    (
        [
            "phone ",
            ("PHONE_NUMBER", "\u0661\u0662\u0663-\u0665\u0665\u0665-\u0660\u0661\u0664\u0667"),
        ],
        "arabic-indic",
    ),
]
for parts, how in ADVERSARIAL:
    add(parts, source=src(), tags=["adversarial", how])

# ---------------------------------------------------------------- negatives
NEGATIVE = {
    "luhn-invalid": [
        "The order reference is 4111 1111 1111 1112.",
        "Tracking code 5555-5555-5555-4445 was not found.",
        "Export batch 4242424242424243 finished.",
        "Ticket 6011 1111 1111 1118 is closed.",
        "Internal account 3782 822463 10006 (not a card).",
        "Sequence 1234 5678 9012 3456 in the test fixture.",
    ],
    "version": [
        "Upgrade to version 2.14.0 before the release.",
        "We run Python 3.11.7 and Node 20.10.0 in CI.",
        "Chrome 120.0.6099.109 shows the bug, Firefox does not.",
        "The changelog for v4.2.1 lists three fixes.",
        "Firmware 1.0.4.2 fixed the wifi drop.",
        "pip install requests==2.32.3",
        "Kernel 6.8.0-45-generic panics on boot.",
        "Build 2024.11.29.1 passed all checks.",
    ],
    "order-id": [
        "Order #A-1043-2291 shipped today.",
        "Your order 20240105-7781 is on its way.",
        "Invoice INV-2024-000123 is overdue.",
        "Case number 00183245 was escalated.",
        "Ticket INC0012345 assigned to the network team.",
        "Reservation code QX7-2291-LMN confirmed.",
        "Customer id 100234567 has two open orders.",
        "PO 4500012345 was approved by finance.",
        "Shipment 1Z 999 AA1 01 2345 6784 is delayed.",
        "Batch 2024-11-29-001 processed 1,204 records.",
    ],
    "date": [
        "The meeting is on 2024-01-05 at 10:30:00.",
        "Deadline: 05/01/2025, no extensions.",
        "Born in the spring of 1990, the project is older than the team.",
        "The report covers 12.03.2024 to 19.03.2024.",
        "Timestamp 2024-11-29T09:54:58Z in UTC.",
        "Q3 2024 revenue closed on 30 September 2024.",
        "The cron runs at 02:15:00 every night.",
    ],
    "price": [
        "The laptop costs $1,299.00 and the dock $249.99.",
        "Total: EUR 45.90 including VAT.",
        "We raised 12,500,000 in the last round.",
        "Prices start at 9.99 per month, 99.90 per year.",
        "The budget line is 1 234 567 for next year.",
        "Shipping adds £4.50 to orders under £30.",
    ],
    "placeholder": [
        "Set OPENAI_API_KEY=sk-your-key-here before running the script.",
        "Replace YOUR_API_KEY with the key from the dashboard.",
        "password=${DB_PASSWORD}",
        "DATABASE_URL=postgres://user:${PGPASSWORD}@db/app",
        "Use postgres://user:<password>@host:5432/db as the format.",
        "api_key: <insert key>",
        "Authorization: Bearer <token>",
        "AWS_ACCESS_KEY_ID=AKIAXXXXXXXXXXXXXXXX",
        "token: sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "password: ********",
        "Enter your e-mail as name@domain in the form.",
        "The key looks like sk-... and is shown once.",
        "pwd=<your password>",
        "ssn: XXX-XX-XXXX",
    ],
    "code": [
        'password = os.environ["DB_PASSWORD"]',
        "api_key=settings.openai_api_key",
        "pwd = getpass.getpass()",
        "if password == confirm_password: save()",
        "def check_password(password: str) -> bool:",
        "token = request.headers.get('Authorization')",
        "const secretKey = process.env.SECRET_KEY;",
        'client = Client(api_key=os.getenv("API_KEY"))',
    ],
    "security-discussion": [
        "Never paste your API key into a chat window.",
        "A JWT has three base64url parts separated by dots.",
        "A US social security number has the form AAA-GG-SSSS.",
        "An IBAN starts with a two-letter country code and two check digits.",
        "Rotate AWS access keys every 90 days and never commit them.",
        "Passwords must be at least 12 characters long.",
        "password: must contain a symbol",
        "The bearer of this letter is authorised to collect the parcel.",
        "Private keys belong in a secrets manager, not in the repository.",
        "Phone numbers are stored in E.164 format.",
        "Credit card numbers are validated with the Luhn checksum.",
        "Our token limit is 128000 tokens per request.",
    ],
    "technical": [
        "The service listens on port 8080 and returns HTTP 404 for unknown paths.",
        "Error 0x80070005 means access denied.",
        "UUID 123e4567-e89b-12d3-a456-426614174000 identifies the tenant.",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "Commit a94a8fe5ccb19ba61c4c0873d391e987982fbbd3 introduced the regression.",
        "ISBN 978-0-13-468599-1 is the second edition.",
        "Set the timeout to 30000 ms and retries to 5.",
        "Latency p99 was 12.4 ms at 2,500 requests/s.",
        "The matrix has shape (1024, 768) and 786432 entries.",
        "Flight LH 2041 departs from gate B12.",
        "Room 1204, building 3, floor 12.",
        "The coordinates are 51.5074, -0.1278.",
        "Use the sk_ prefix convention for secret keys in your own code.",
        "The MAC address format is aa:bb:cc:dd:ee:ff.",
        "Call the function with ext=204 and retry=3.",
        "Chapter 3.2.1 explains the 10:1 ratio.",
    ],
    "more": [
        "The invoice total is 4111 dollars for 1111 units.",
        "Call me at noon, my extension changed last week.",
        "Reply to this thread, not to the old address.",
        "The e-mail bounced because the mailbox is full.",
        "Our IP range is documented on the wiki.",
        "The SKU 400-12-5567-B is out of stock.",
        "Part number 12-3456-7890-12 fits the older model.",
        "Score was 987 out of 1000.",
        "Use @here to ping the channel.",
        "Follow @llmplane for release news.",
        "The regex ^[a-z]+@[a-z]+$ matches simple addresses.",
        "Size: 1920x1080, 60 Hz.",
        "The password reset link expires in 24 hours.",
        "Set the API key in the environment, never in code.",
        "password: reset via the portal",
        "Our bearer tokens expire after 3600 seconds.",
        "The secret to good bread is patience.",
        "Paste the token from step 2 here.",
        "At 3:45:10 the job restarted.",
        "Route 66 runs 2,448 miles.",
        "Temperature 21.5 C, humidity 40.2%.",
        "The lottery numbers were 4, 8, 15, 16, 23 and 42.",
        "The address is 221B Baker Street style fiction.",
        "Version 10.4.2.1 of the driver is required.",
        "HTTP/1.1 200 OK",
        "See RFC 5737 for documentation addresses.",
        "Meeting room booked 09:00-10:30.",
        "AKIA is the prefix of long-term AWS access key ids.",
        "eyJ is how a base64url-encoded JSON object starts.",
        "hf_ tokens are created in the account settings.",
    ],
    "prose": [
        "Thanks for the quick turnaround on the design review.",
        "Can you summarise the attached meeting notes in three bullet points?",
        "The team agreed to move the launch to next quarter.",
        "Write a short poem about autumn leaves.",
        "What is the difference between a process and a thread?",
        "Translate 'good morning' into French and German.",
        "Our retention improved by 4% after the onboarding change.",
        "Explain how a hash map handles collisions.",
        "Draft a polite reminder about the overdue timesheets.",
        "List three ways to reduce cloud costs for batch jobs.",
        "The recipe needs 2 cups of flour and 3 eggs.",
        "He scored 98 out of 100 on the final exam.",
    ],
}
for kind, texts in NEGATIVE.items():
    for text in texts:
        add([text], source=src(), tags=["hard-negative" if kind != "prose" else "benign", kind])


def main() -> None:
    with OUT.open("w", encoding="utf-8") as out:
        for row in _rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    positives = sum(1 for row in _rows if row["label"])
    print(f"{OUT.name}: {len(_rows)} examples, {positives} positive")


if __name__ == "__main__":
    main()
