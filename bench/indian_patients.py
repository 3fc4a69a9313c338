"""Generator of realistic Indian patient records for benchmarks (names, mobiles, ABHA numbers, addresses).

Names mix regions and communities; a share are written in Devanagari, as front desks in the Hindi belt type
them. Frequencies follow Zipf-like curves, so "Kumar", "Singh", "Devi" and "Sunita" repeat the way they do in
a real clinic register. Everything is drawn from a seeded `random.Random`, so a run is reproducible.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.ids import luhn_check_digit


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


MALE = _words(
    "Rajesh Suresh Ramesh Mahesh Amit Sanjay Vijay Anil Sunil Ravi Manoj Rahul Deepak Ashok Arun Vinod "
    "Rakesh Mukesh Dinesh Santosh Prakash Ajay Sachin Rohit Vikram Naveen Kiran Srinivas Venkatesh Ganesh "
    "Murali Balaji Karthik Senthil Arjun Harish Girish Praveen Nitin Gaurav Abhishek Aditya Ankit Pankaj "
    "Manish Rajendra Narendra Subhash Gopal Krishna Mohan Shankar Ramachandran Prasad Raju Babu Imran Salman "
    "Irfan Mohammed Abdul Farhan Gurpreet Harpreet Jaswinder Manpreet Joseph Thomas Anthony Sourav Subhajit "
    "Debashis Arnab Biswajit Pradeep Sandeep Yogesh Tushar Omkar Siddharth Vivek Ram Shyam Hari"
)
FEMALE = _words(
    "Sunita Anita Geeta Seema Rekha Priya Pooja Neha Kavita Meena Lakshmi Saraswati Parvati Radha Savitri "
    "Usha Asha Nirmala Shanti Kamala Padma Vijaya Jaya Sarita Suman Manju Anjali Divya Swati Shweta Sneha "
    "Deepa Revathi Kalpana Sangeeta Mamta Shabana Farzana Nasreen Ayesha Fatima Rukhsar Gurleen Simran "
    "Harleen Mary Elizabeth Rina Mousumi Moumita Sharmila Tanuja Madhuri Varsha Ashwini Pallavi Bhavana "
    "Shobha Vidya Kaveri Malathi Selvi Bharathi Meenakshi Ananya Ishita Riya Aarti Jyoti Kiran Nisha Preeti "
    "Ritu Sapna"
)
SURNAMES = _words(
    "Kumar Singh Sharma Verma Gupta Yadav Mishra Pandey Tiwari Patel Shah Reddy Rao Naidu Nair Menon Pillai "
    "Iyer Iyengar Krishnan Subramanian Das Banerjee Chatterjee Mukherjee Ghosh Bose Sen Roy Dutta Mohanty "
    "Patnaik Desai Joshi Kulkarni Deshpande Patil Pawar Jadhav Chauhan Jain Agarwal Bansal Saxena "
    "Srivastava Chaudhary Thakur Rathore Gill Sandhu Dhillon Grewal Khan Ahmed Ansari Shaikh Qureshi "
    "Siddiqui Fernandes D'Souza Pereira Mathew George Varghese Kurian Bhat Hegde Shetty Gowda Murthy "
    "Chandra Prasad Mehta Kapoor Malhotra Khanna Arora Bhatia Sethi"
)
# Devanagari spellings as a Hindi-speaking front desk types them.
MALE_HI = _words(
    "राम राजेश सुरेश रमेश महेश अमित संजय विजय अनिल सुनील रवि मनोज राहुल दीपक अशोक विनोद राकेश"
    " मुकेश दिनेश संतोष प्रकाश अजय कृष्ण मोहन गोपाल श्याम हरि"
)
FEMALE_HI = _words(
    "सुनीता अनीता गीता सीमा रेखा प्रिया पूजा नेहा कविता मीना लक्ष्मी सरस्वती राधा सावित्री उषा"
    " आशा निर्मला शांति कमला सुमन मंजू अंजलि ज्योति किरण"
)
SURNAMES_HI = _words(
    "कुमार सिंह शर्मा वर्मा गुप्ता यादव मिश्रा पांडे तिवारी पटेल जोशी चौहान जैन अग्रवाल सक्सेना श्रीवास्तव चौधरी ठाकुर राठौर"
)
PLACES = [
    ("Lucknow", "Uttar Pradesh", "226"),
    ("Varanasi", "Uttar Pradesh", "221"),
    ("Patna", "Bihar", "800"),
    ("Jaipur", "Rajasthan", "302"),
    ("Bhopal", "Madhya Pradesh", "462"),
    ("Pune", "Maharashtra", "411"),
    ("Nagpur", "Maharashtra", "440"),
    ("Ahmedabad", "Gujarat", "380"),
    ("Hyderabad", "Telangana", "500"),
    ("Bengaluru Urban", "Karnataka", "560"),
    ("Chennai", "Tamil Nadu", "600"),
    ("Madurai", "Tamil Nadu", "625"),
    ("Ernakulam", "Kerala", "682"),
    ("Kolkata", "West Bengal", "700"),
    ("Bhubaneswar", "Odisha", "751"),
    ("Ludhiana", "Punjab", "141"),
    ("Dehradun", "Uttarakhand", "248"),
    ("Guwahati", "Assam", "781"),
]
DEVANAGARI_SHARE = 0.12
ABHA_SHARE = 0.30


def _zipf_cumulative(n: int, s: float) -> list[float]:
    """Cumulative Zipf weights: the k-th name of a list is about 1/k^s as frequent as the first."""
    return list(itertools.accumulate(1 / (rank + 1) ** s for rank in range(n)))


# First names are spread thin (the commonest about 3% of patients); surnames bunch up: "Kumar" or "Singh"
# is part of one name in ten in a Hindi-belt register.
_CUM = {
    **{seq: _zipf_cumulative(len(seq), 0.5) for seq in (MALE, FEMALE, MALE_HI, FEMALE_HI)},
    **{seq: _zipf_cumulative(len(seq), 0.9) for seq in (SURNAMES, SURNAMES_HI)},
}
MIDDLE_MALE = ("Kumar", "Prasad", "Chandra", "Lal", "Nath")


def _pick(rng: random.Random, seq: tuple[str, ...]) -> str:
    return rng.choices(seq, cum_weights=_CUM[seq])[0]


def person_name(rng: random.Random, gender: str) -> str:
    """A full name: first name + surname, sometimes a middle name, an initial, or a first name alone.

    North Indian women are often registered as "<name> Devi" or "<name> Kumari", men with "Kumar" or
    "Prasad" as a middle name; South Indian names come as "<initial>. <name>".
    """
    female = gender == "F" or (gender in "OU" and rng.random() < 0.5)
    if rng.random() < DEVANAGARI_SHARE:
        first = _pick(rng, FEMALE_HI if female else MALE_HI)
        if rng.random() < 0.05:
            return first
        return f"{first} {'देवी' if female and rng.random() < 0.2 else _pick(rng, SURNAMES_HI)}"
    first = _pick(rng, FEMALE if female else MALE)
    roll = rng.random()
    if roll < 0.04:
        return first  # single-name registrations are common
    if roll < 0.10:
        return f"{_pick(rng, SURNAMES)[0]}. {first}"
    if female and roll < 0.25:
        return f"{first} {rng.choice(('Devi', 'Devi', 'Kumari'))}"
    if roll < 0.25:
        middle = rng.choice(MIDDLE_MALE) if rng.random() < 0.6 else _pick(rng, MALE)
        return f"{first} {middle} {_pick(rng, SURNAMES)}"
    return f"{first} {_pick(rng, SURNAMES)}"


def mobile(rng: random.Random) -> str:
    return f"+91{rng.choice('6789')}{rng.randrange(10**9):09d}"


def abha_number(rng: random.Random, taken: set[str]) -> str:
    """A 14-digit ABHA number with a valid Luhn check digit, not in ``taken`` (which it joins)."""
    while True:
        payload = f"{rng.choice('123456789')}{rng.randrange(10**12):012d}"
        number = payload + str(luhn_check_digit(payload))
        if number not in taken:
            taken.add(number)
            return number


def uuid7_at(moment: datetime, rng: random.Random) -> uuid.UUID:
    """A version-7 UUID for a past moment (bulk-loaded rows keep ids ordered like their registration)."""
    ms = int(moment.timestamp() * 1000)
    rand = rng.getrandbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


@dataclass
class PatientGenerator:
    """Draws patients; ``abha_taken`` keeps ABHA numbers unique across everything it made."""

    rng: random.Random
    abha_taken: set[str]
    serial: int = 0

    def fields(self) -> dict[str, Any]:
        """API-shaped fields (the body of ``POST /api/v1/patients``)."""
        rng = self.rng
        self.serial += 1
        gender = rng.choices("MFOU", weights=(48, 50, 1, 1))[0]
        yob = min(2025, max(1930, int(rng.triangular(1930, 2025, 1992))))
        out: dict[str, Any] = {"name": person_name(rng, gender), "gender": gender, "year_of_birth": yob}
        if rng.random() < 0.93:  # children and the elderly often come without their own mobile
            out["mobile"] = mobile(rng)
        if rng.random() < 0.35:
            out["date_of_birth"] = (date(yob, 1, 1) + timedelta(days=rng.randrange(365))).isoformat()
        if rng.random() < ABHA_SHARE:
            out["abha_number"] = abha_number(rng, self.abha_taken)
            if rng.random() < 0.5:
                out["abha_address"] = f"p{self.serial}.{rng.randrange(10**6):06d}@abdm"
        if rng.random() < 0.6:
            district, state, pin = rng.choice(PLACES)
            pincode = f"{pin}{rng.randrange(1000):03d}"
            out["address"] = {"district": district, "state": state, "pincode": pincode}
        return out

    def row(self, clinic_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> tuple[Any, ...]:
        """A row for ``copy_records_to_table`` (`ROW_COLUMNS` order), registered in the last 5 years."""
        f = self.fields()
        created = now - timedelta(seconds=self.rng.randrange(5 * 365 * 86400))
        dob = date.fromisoformat(f["date_of_birth"]) if "date_of_birth" in f else None
        address = _json(f.get("address"))
        return (
            uuid7_at(created, self.rng),
            clinic_id,
            f["name"],
            f["gender"],
            f["year_of_birth"],
            dob,
            f.get("mobile"),
            f.get("abha_number"),
            f.get("abha_address"),
            address,
            created,
            created,
            user_id,
            user_id,
        )


ROW_COLUMNS = (
    "id",
    "clinic_id",
    "name",
    "gender",
    "year_of_birth",
    "date_of_birth",
    "mobile",
    "abha_number",
    "abha_address",
    "address",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


# Spellings front desks mix up; a search typed one way should still find the other.
_VARIANTS = (
    ("ksh", "x"),
    ("th", "t"),
    ("ee", "i"),
    ("sh", "s"),
    ("oo", "u"),
    ("v", "w"),
    ("ph", "f"),
    ("i", "ee"),
    ("a", "aa"),
    ("t", "th"),
    ("u", "oo"),
)


def misspell(name: str, rng: random.Random) -> str:
    """The name with one plausible typo or spelling variant in one word (Latin script only)."""
    words = name.split()
    i = rng.randrange(len(words))
    word = words[i]
    lower = word.lower()
    variants = [(a, b) for a, b in _VARIANTS if a in lower[1:]]
    if variants and rng.random() < 0.6:
        a, b = rng.choice(variants)
        at = lower.index(a, 1)
        word = word[:at] + b + word[at + len(a) :]
    elif len(word) > 4:  # swap two inner letters, or drop one
        at = rng.randrange(1, len(word) - 2)
        swapped = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
        word = swapped if rng.random() < 0.5 else word[:at] + word[at + 1 :]
    else:
        word = word + word[-1]
    words[i] = word
    return " ".join(words)


def utc_now() -> datetime:
    return datetime.now(UTC)
