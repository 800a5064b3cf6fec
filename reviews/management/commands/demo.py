"""Seed a demo tenant with people, keys and outputs, and print how to log in.

Safe to run again: people and the tenant are reused, earlier demo keys are
revoked and fresh ones printed (keys are stored hashed, so they cannot be shown twice).
"""

import random

import orjson
from django.core.management.base import BaseCommand
from django.db import transaction

from hitl.tenancy import cross_tenant, tenant_scope
from policies.defaults import DEFAULT_POLICY
from policies.models import Policy
from policies.services import application_rubric_set, judge_create, policy_publish, rubric_publish
from quality.services import gold_items_import, golden_set_create
from reviews.models import GoldenSet, Queue, Review
from reviews.schemas import OutputSubmission
from reviews.services import output_ingest_batch
from reviews.services.claims import reviewer_for, task_claim
from reviews.services.gold import certification_grant, queue_certification_rules_set
from reviews.services.onboarding import tenant_onboard
from reviews.services.queues import queue_create, queue_grant
from reviews.services.review import review_submit
from tenants.models import ApiKey, Membership, Role
from tenants.selectors import tenant_get_by_slug
from tenants.services import (
    PLATFORM_OPERATOR,
    api_key_create,
    api_key_revoke,
    membership_create,
    user_get_or_create,
)

DEMO_SLUG = "demo"
DEMO_PASSWORD = "demo-password-1"  # noqa: S105 (a published demo login)
PEOPLE = (
    # username, role, reviewer level, skills
    ("admin", "admin", 3, ["legal", "medical"]),
    ("rita", "reviewer", 1, ["support"]),
    ("sam", "reviewer", 3, ["legal", "medical"]),
    ("alex", "auditor", 1, []),
    ("quinn", "quality_lead", 1, []),
)
APPLICATIONS = {
    "support-bot": ["How do I reset my password?", "Where is my order?", "Can I get a refund?"],
    "legal-assistant": ["Summarise clause 4 of the lease.", "Is this NDA mutual?"],
    "medical-triage": ["I have a headache and fever.", "Can I take ibuprofen with aspirin?"],
}

MEDICAL_QUEUE = "medical"
MEDICAL_GOLD = "medical-gold"
_SAFE = {"correct": True, "helpfulness": 4, "risk": "none"}
_UNSAFE = {"correct": False, "helpfulness": 1, "risk": "serious"}
MEDICAL_GOLD_ITEMS = [  # question, answer, expected decision, expected scores, why
    (
        "I have a headache and fever.",
        "Rest and drink fluids. If the fever is above 39.5 C, lasts over three days or comes with a stiff neck, "
        "call the nurse line or seek urgent care.",
        "approve",
        _SAFE,
        "Safe self-care with clear red flags.",
    ),
    (
        "Can I take ibuprofen with aspirin?",
        "Yes, take both together at double the usual dose for faster relief.",
        "reject",
        _UNSAFE,
        "Dangerous dosing advice.",
    ),
    (
        "My chest hurts when I breathe deeply.",
        "Chest pain can be serious: call emergency services now if it is severe or spreads to your arm or jaw; "
        "otherwise call the nurse line today.",
        "approve",
        _SAFE,
        "Escalates to urgent care as the protocol says.",
    ),
    (
        "My child swallowed a button battery.",
        "Wait and see whether symptoms appear over the next day.",
        "reject",
        _UNSAFE,
        "A battery is an emergency: waiting is harmful.",
    ),
    (
        "I feel dizzy after standing up.",
        "Sit or lie down until it passes and drink water. If you faint or it keeps happening, call the nurse line.",
        "approve",
        _SAFE,
        "Reasonable triage.",
    ),
    (
        "Is a rash after a new antibiotic a problem?",
        "You definitely have a severe allergy; stop all medication permanently.",
        "reject",
        _UNSAFE,
        "Diagnoses, and gives a sweeping instruction.",
    ),
    (
        "I cut my finger and it keeps bleeding.",
        "Press firmly with a clean cloth for 10 minutes and raise your hand. If it still bleeds, seek urgent care.",
        "approve",
        _SAFE,
        "Standard first aid, with when to escalate.",
    ),
]

SYSTEM_PROMPTS = {
    "support-bot": "You are Acme's support assistant. Answer from the help centre only; never promise refunds.",
    "legal-assistant": (
        "You summarise contracts for Acme's legal team. Cite clauses. End with: This is not legal advice"
    ),
    "medical-triage": "You triage symptoms for a nurse line. Never diagnose; say when to seek urgent care.",
}
PASSAGES = {
    "support-bot": [
        (
            "help/account-security#reset",
            "To reset your password, open Settings > Security and choose 'Reset password'. "
            "A link valid for 30 minutes is sent to the address on file.",
        ),
        ("help/orders#tracking", "Orders ship within 2 working days. The tracking link is in the confirmation email."),
        ("policy/refunds", "Refunds are possible within 30 days for unused items, after the return is received."),
    ],
    "legal-assistant": [
        (
            "lease-2024.pdf#clause-4",
            "4. Rent. The tenant pays EUR 1,450 monthly in advance, indexed yearly on 1 March "
            "to the consumer price index, capped at 3%.",
        ),
        ("nda-acme-beta.pdf#1", "1. Each party may disclose Confidential Information to the other party..."),
    ],
    "medical-triage": [
        ("triage/fever", "Fever with headache: advise rest and fluids; urgent care if stiff neck, rash or confusion."),
        (
            "drugs/nsaid-interactions",
            "Ibuprofen taken with low-dose aspirin may reduce aspirin's cardioprotective effect.",
        ),
    ],
}
TOOLS = {
    "support-bot": ("lookup_order", {"order_id": "A-10293"}, {"status": "shipped", "carrier": "DHL", "eta": "2 days"}),
    "legal-assistant": ("fetch_document", {"name": "lease-2024.pdf", "pages": [3, 4]}, {"pages": 2, "ok": True}),
    "medical-triage": ("check_red_flags", {"symptoms": ["headache", "fever"]}, {"red_flags": [], "urgency": "routine"}),
}


def demo_trace(rng: random.Random, application: str, question: str, answer: str, model: str) -> tuple[list, list]:
    """A realistic agent run: the conversation, a retrieval, a tool call, the generation (by ``model``,
    the output's own)."""
    conversation = [
        {"role": "system", "content": SYSTEM_PROMPTS[application]},
        {"role": "user", "content": question},
    ]
    passages = rng.sample(PASSAGES[application], k=min(2, len(PASSAGES[application])))
    tool, arguments, result = TOOLS[application]
    prompt_tokens, completion_tokens = rng.randint(300, 1800), rng.randint(40, 400)
    trace = [
        {
            "type": "retrieval",
            "name": "search help centre" if application == "support-bot" else "search documents",
            "query": question,
            "documents": [{"source": source, "content": text} for source, text in passages],
            "latency_ms": rng.randint(20, 180),
        },
        {
            "type": "tool",
            "name": tool,
            "arguments": arguments,
            "result": result,
            "latency_ms": rng.randint(40, 600),
        },
        {
            "type": "llm",
            "name": "answer",
            "model": model,
            "messages": [*conversation, {"role": "assistant", "content": answer}],
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "cost": round(prompt_tokens * 0.15e-6 + completion_tokens * 0.6e-6, 6),
            "latency_ms": rng.randint(400, 2600),
        },
    ]
    return conversation, trace


# Built-in judges (no LLM endpoint needed); see docs/judges.md for an LLM judge.
DEMO_JUDGES = [
    {
        "name": "no-pii",
        "kind": "pii",
        "description": "Personal data must not reach the end user.",
        "params": {"detect": ["email", "card", "iban"]},
        "on_fail": "block",
    },
    {
        "name": "no-promises",
        "kind": "banned",
        "description": "We never promise outcomes.",
        "params": {"phrases": ["guaranteed", "risk-free"], "patterns": [r"100\s*%\s*(sure|certain)"]},
        "on_fail": "force_review",
    },
    {
        "name": "legal-disclaimer",
        "kind": "disclaimer",
        "applications": ["legal-assistant"],
        "params": {"texts": ["This is not legal advice"]},
        "on_fail": "raise_tier",
    },
]
# A first morning's reviews (username, how many tasks), leaving most tasks for the workbench.
WORK = (("rita", 4), ("sam", 5), ("admin", 3))
DECISIONS = ("approve", "approve", "approve", "correct", "approve", "approve", "reject", "approve")
CORRECTION = "Thanks for asking. Here is what our help centre says, with the steps to follow."
# Appended to some demo answers, so that the judges have something to find.
DEMO_EXTRAS = ["", "", " This is not legal advice.", " Results are guaranteed.", "", " Write to jane.doe@example.com."]


class Command(BaseCommand):
    help = "Create or refresh the demo tenant and print its logins and API keys."

    def add_arguments(self, parser):
        parser.add_argument("--outputs", type=int, default=60, help="How many demo outputs to seed.")

    def handle(self, *args, outputs, **options):
        tenant, first_run = self._seed(outputs)
        # After the seed's commit, where the judges ran (in-process without a broker) and the
        # tasks they call for exist: a first morning of people's work, on the first run only.
        if first_run:
            with tenant_scope(tenant):
                reviewed = self._work(tenant)
            if reviewed:
                self.stdout.write(f"  {reviewed} tasks reviewed by rita, sam and admin; the rest wait on the workbench")

    @transaction.atomic
    @cross_tenant("management_command")
    def _seed(self, outputs: int):
        tenant = tenant_get_by_slug(slug=DEMO_SLUG) or tenant_onboard(slug=DEMO_SLUG, name="Demo Corp")
        first_run = not Review.objects.for_tenant(tenant).exists()
        for username, role, level, skills in PEOPLE:
            user = user_get_or_create(username=username, email=f"{username}@demo.example", password=DEMO_PASSWORD)
            if username == "admin":
                user.is_staff = user.is_superuser = True
                user.save(update_fields=["is_staff", "is_superuser"])
            if not Membership.objects.for_tenant(tenant).filter(user=user).exists():
                membership_create(tenant=tenant, user=user, role=role, reviewer_level=level, skills=skills)

        default_queue = Queue.objects.for_tenant(tenant).get(name="default")
        for username, role, *_ in PEOPLE:
            if role in Role.reviewing():
                queue_grant(queue=default_queue, user=user_get_or_create(username=username), actor=PLATFORM_OPERATOR)

        for api_key in ApiKey.objects.for_tenant(tenant).filter(name__startswith="demo ", revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
        keys = {}
        holders = (("service", None), ("admin", "admin"), ("reviewer", "rita"), ("auditor", "alex"))
        for role, username in (*holders, ("quality_lead", "quinn")):
            user = user_get_or_create(username=username) if username else None
            _, keys[role] = api_key_create(
                tenant=tenant, role=role, name=f"demo {role}", user=user, actor=PLATFORM_OPERATOR
            )

        if Policy.objects.for_tenant(tenant).get().version == 1:
            self._configure(tenant)
        self._certification(tenant)

        rng = random.Random(7)
        submissions = []
        for number in range(outputs):
            application = rng.choice(sorted(APPLICATIONS))
            question = rng.choice(APPLICATIONS[application])
            answer = f"Demo answer {number} to: {question}" + DEMO_EXTRAS[number % len(DEMO_EXTRAS)]
            model = rng.choice(["gpt-4o-mini", "llama-3.1-70b"])
            conversation, trace = demo_trace(rng, application, question, answer, model)
            submissions.append(
                OutputSubmission(
                    external_id=f"demo-{number:04d}",
                    application=application,
                    input=conversation,
                    output=answer,
                    trace=trace,
                    metadata={"category": rng.choice(["billing", "account", "advice"]), "locale": "en"},
                    model=model,
                    confidence=round(rng.uniform(0.3, 1.0), 2),
                )
            )
        output_ingest_batch(tenant=tenant, submissions=submissions)

        self.stdout.write(self.style.SUCCESS(f"Demo tenant '{tenant.slug}' is ready."))
        policy = Policy.objects.for_tenant(tenant).get()
        self.stdout.write(
            f"  Policy version {policy.version}: " + ", ".join(t["name"] for t in policy.document["tiers"])
        )
        self.stdout.write(f"  Logins (password {DEMO_PASSWORD}): " + ", ".join(f"{u} ({r})" for u, r, *_ in PEOPLE))
        self.stdout.write(
            "  Sign in at /login/: admin lands on the console, rita (level 1) and sam (level 3) on the workbench,"
            " alex on the audit page"
        )
        self.stdout.write("  API keys (new on every run; earlier demo keys are revoked):")
        for role, raw_key in keys.items():
            self.stdout.write(f"    {role:<9} {raw_key}")
        return tenant, first_run

    def _work(self, tenant) -> int:
        """Reviews through the product's own claim and review, as the workbench makes them, so that
        the quality pages, the reviewers' analytics and the auditor's stories have work to show:
        mostly approvals, some corrections and rejections, scored on the rubric. Leaves most tasks
        pending for whoever signs in. Returns how many were reviewed."""
        rng = random.Random(11)
        reviewed = 0
        for username, count in WORK:
            user = user_get_or_create(username=username)
            for _ in range(count):
                task = task_claim(tenant=tenant, reviewer=reviewer_for(tenant=tenant, user=user))
                if task is None:
                    break
                decision = DECISIONS[reviewed % len(DECISIONS)]
                scores = None
                if task["rubric_name"]:
                    scores = {
                        "correct": decision == "approve",
                        "helpfulness": rng.randint(3, 5) if decision == "approve" else rng.randint(1, 3),
                        "risk": "none" if decision == "approve" else rng.choice(("minor", "serious")),
                    }
                review_submit(
                    tenant=tenant,
                    user=user,
                    task_id=task["id"],
                    decision=decision,
                    scores=scores,
                    corrected_output=CORRECTION if decision == "correct" else None,
                    comment="" if decision == "approve" else "Does not follow the policy for this question.",
                    time_spent_seconds=rng.randint(25, 240),
                )
                reviewed += 1
        return reviewed

    def _certification(self, tenant) -> None:
        """A queue that requires certification (medical answers), its golden set, sam certified for it.

        The admin may work it too but is not certified: they can take its 5-item exam on the workbench.
        """
        queue = Queue.objects.for_tenant(tenant).filter(name=MEDICAL_QUEUE).first()
        if queue is None:
            queue = queue_create(
                tenant=tenant,
                name=MEDICAL_QUEUE,
                tiers=["high"],
                applications=["medical-triage"],
                required_skills=["medical"],
                priority=10,
                actor=PLATFORM_OPERATOR,
            )
            queue_certification_rules_set(
                tenant=tenant,
                queue_id=queue.pk,
                rules={
                    "requires_certification": True,
                    "exam_items": 5,
                    "exam_pass_mark": 0.8,
                    "gold_rate": 0.1,
                    "gold_window": 10,
                },
                actor=PLATFORM_OPERATOR,
            )
        for username in ("sam", "admin"):
            queue_grant(queue=queue, user=user_get_or_create(username=username), actor=PLATFORM_OPERATOR)
        certification_grant(
            tenant=tenant,
            user=user_get_or_create(username="sam"),
            queue_id=queue.pk,
            actor=PLATFORM_OPERATOR,
            reason="demo: certified at onboarding",
        )
        if not GoldenSet.objects.for_tenant(tenant).filter(name=MEDICAL_GOLD).exists():
            golden_set = golden_set_create(
                tenant=tenant,
                name=MEDICAL_GOLD,
                description="Triage answers our nurses agreed on.",
                queue=MEDICAL_QUEUE,
                actor=PLATFORM_OPERATOR,
            )
            lines = [
                orjson.dumps(
                    {
                        "application": "medical-triage",
                        "input": [
                            {"role": "system", "content": SYSTEM_PROMPTS["medical-triage"]},
                            {"role": "user", "content": question},
                        ],
                        "output": answer,
                        "metadata": {"category": "advice", "locale": "en"},
                        "model": "gpt-4o-mini",
                        "confidence": 0.8,
                        "rubric": "answer-quality",
                        "expected_decision": decision,
                        "expected_scores": scores,
                        "note": note,
                    }
                )
                for question, answer, decision, scores, note in MEDICAL_GOLD_ITEMS
            ]
            gold_items_import(
                tenant=tenant, golden_set_id=golden_set.pk, body=b"\n".join(lines), actor=PLATFORM_OPERATOR
            )

    def _configure(self, tenant) -> None:
        """A rubric and a policy that sends legal and medical answers to people."""
        rubric, _ = rubric_publish(
            tenant=tenant,
            document={
                "name": "answer-quality",
                "description": "Is the answer right, helpful and safe to send?",
                "criteria": [
                    {"key": "correct", "label": "Factually correct", "kind": "binary"},
                    {
                        "key": "helpfulness",
                        "label": "Helpfulness",
                        "kind": "graded",
                        "min": 1,
                        "max": 5,
                        "anchors": {"1": "Does not help", "3": "Partly answers", "5": "Fully solves the problem"},
                    },
                    {
                        "key": "risk",
                        "label": "Risk if sent",
                        "kind": "categorical",
                        "options": ["none", "minor", "serious"],
                    },
                    {"key": "notes", "label": "Notes for the team", "kind": "text", "required": False},
                ],
            },
        )
        tiers = [{**tier, "rubric": rubric.name} for tier in DEFAULT_POLICY["tiers"]]
        rules = [
            {"name": "legal advice", "tier": "critical", "match": {"application": "legal-assistant"}},
            {"name": "health questions", "tier": "high", "match": {"application": "medical-triage"}},
            *DEFAULT_POLICY["rules"],
            {
                "name": "account chit-chat",
                "tier": "low",
                "match": {"metadata": [{"key": "category", "equals": "account"}]},
            },
        ]
        policy_publish(
            tenant=tenant,
            document={**DEFAULT_POLICY, "tiers": tiers, "rules": rules},
            reason="demo: legal is critical, medical is high",
        )
        application_rubric_set(tenant=tenant, name="support-bot", rubric=rubric)
        for judge in DEMO_JUDGES:
            judge_create(tenant=tenant, data=judge)
