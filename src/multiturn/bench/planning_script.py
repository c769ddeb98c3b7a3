"""The user side of the cache benchmark: a long, deterministic planning conversation.

A team lead plans a three-day engineering offsite with an assistant: facts to keep (people,
flights, prices, rooms, dates), questions that lean on earlier facts, decisions, changes of
plan. Each message is one of a set of templates filled from fixed pools by a seeded
``random.Random``, so the same ``(turns, seed)`` always gives the same messages (about 20-60
tokens each), and no two consecutive messages share a template; most carry a follow-up fact.
"""

from __future__ import annotations

import random

SYSTEM_PROMPT = (
    "You are a planning assistant helping a team lead organise an engineering offsite. "
    "Keep track of the facts, numbers, names and decisions you are given. "
    "Answer in one short sentence."
)

OPENING = (
    "We're planning a three-day engineering offsite in Lisbon for 42 people, Tuesday 14 to Thursday "
    "16 April. I'll give you facts as we go; keep your answers short."
)

NAMES = (
    "Ana Ribeiro",
    "Tomás Ferreira",
    "Priya Natarajan",
    "Lukas Becker",
    "Mei Chen",
    "Omar Haddad",
    "Sofia Rossi",
    "Jonas Lindqvist",
    "Aisha Bello",
    "Diego Álvarez",
    "Hannah Kowalski",
    "Kenji Watanabe",
)
ROLES = ("backend lead", "SRE", "designer", "product manager", "data engineer", "QA lead", "security engineer")
CITIES = ("Berlin", "Warsaw", "Dublin", "Madrid", "Stockholm", "Tokyo", "Nairobi", "Toronto", "Milan")
DAYS = ("Tuesday 14 April", "Wednesday 15 April", "Thursday 16 April")
TIMES = ("08:30", "09:15", "10:40", "13:05", "14:50", "16:20", "18:45", "21:10")
SESSIONS = (
    "incident review",
    "roadmap",
    "API design",
    "observability",
    "hiring plan",
    "security threat modelling",
    "cost review",
    "demo day",
)
VENUES = ("LX Factory loft", "Hub Criativo do Beato", "Palácio Chiado hall", "Village Underground room")
HOTELS = ("Hotel Lisboa Plaza", "Memmo Alfama", "Hotel Mundial", "Lumiares Hotel")
RESTAURANTS = ("Taberna da Rua das Flores", "Cervejaria Ramiro", "O Velho Eurico", "Prado", "Zé da Mouraria")
TASKS = ("the slide deck", "the visa letters", "the badge printing", "the travel bookings", "the workshop agenda")

TEMPLATES = (
    "{name}, our {role}, flies in from {city} on {day}, landing at {time}. "
    "Please put {first} down for the {session} session.",
    "The {venue} quoted €{price:,} per day for up to {seats} people; catering is not included.",
    "Budget update: finance approved €{total:,} in total, and {pct}% of it is reserved for travel.",
    "{first} can't make {day}. Move the {session} workshop to {day2} at {time}, same room.",
    "Dinner on {day} is at {restaurant}: {seats} seats booked under {name}'s name, deposit €{deposit}.",
    "How much of the budget is left if the venue costs €{price:,} a day for three days?",
    "Who did I say is running the {session} session, and on which day is it?",
    "Draft a one-line reminder to {name} that {task} are due on {day}.",
    "If {people} people take the {time} shuttle and each van seats {van}, how many vans do we need?",
    "Decision: we book {hotel} for the team, {rooms} rooms at €{night} a night. Note it.",
    "Open question for later: do we need a backup room for the {session} session if it rains on {day}?",
    "{name} asked whether the {session} slot can be shortened to {minutes} minutes. What do you think?",
    "Change of plan: {first} now arrives from {city} at {time} instead, so {first} misses the {session} kick-off.",
    "Add a line to the summary: {name} owns {task}, with a check-in every {day_of_week} at {time}.",
    "What have we decided so far about the hotel, and how many rooms was it?",
    "The taxi from the airport to {hotel} is about €{fare} and {ride} minutes; should we reimburse it?",
)
FOLLOW_UPS = (
    "Also, {name} needs a vegetarian menu at every meal.",
    "Keep in mind the {session} room needs a projector and {seats} chairs.",
    "For the record, {first} approved this on {day_of_week}.",
    "{name} will send the invoice to finance by {day}.",
    "Remember we still owe the {venue} a deposit of €{deposit}.",
    "The shuttle back to the airport leaves at {time} on {day}.",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def user_turns(turns: int, *, seed: int = 0) -> list[str]:
    """The first ``turns`` user messages of the conversation for ``seed``.

    Raises:
        ValueError: ``turns`` is negative.
    """
    if turns < 0:
        raise ValueError(f"turns must be >= 0, not {turns}")
    rng = random.Random(seed)
    messages = [OPENING][:turns]
    previous = -1
    while len(messages) < turns:
        template = rng.randrange(len(TEMPLATES) - 1)
        if template >= previous >= 0:
            template += 1  # never the same template twice in a row
        previous = template
        text = TEMPLATES[template].format(**_fields(rng))
        if rng.random() < 0.6:
            text += " " + rng.choice(FOLLOW_UPS).format(**_fields(rng))
        messages.append(text)
    return messages


def _fields(rng: random.Random) -> dict[str, object]:
    name = rng.choice(NAMES)
    day, day2 = rng.sample(DAYS, 2)
    return {
        "name": name,
        "first": name.split()[0],
        "role": rng.choice(ROLES),
        "city": rng.choice(CITIES),
        "day": day,
        "day2": day2,
        "day_of_week": rng.choice(WEEKDAYS),
        "time": rng.choice(TIMES),
        "session": rng.choice(SESSIONS),
        "venue": rng.choice(VENUES),
        "hotel": rng.choice(HOTELS),
        "restaurant": rng.choice(RESTAURANTS),
        "task": rng.choice(TASKS),
        "price": rng.randrange(2_400, 6_800, 50),
        "seats": rng.randrange(20, 60),
        "total": rng.randrange(60_000, 120_000, 500),
        "pct": rng.randrange(25, 55),
        "deposit": rng.randrange(150, 900, 10),
        "people": rng.randrange(12, 42),
        "van": rng.choice((7, 8, 9)),
        "rooms": rng.randrange(18, 40),
        "night": rng.randrange(95, 240),
        "minutes": rng.choice((30, 45, 60, 75)),
        "fare": rng.randrange(18, 35),
        "ride": rng.randrange(20, 45),
    }
