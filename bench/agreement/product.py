"""Agreement from the database rows to the figure: the product path against a bare one.

Issue 13 point 9: agreement over 1,000,000 units x 3 raters. ``bench/agreement/run.py``
times ``hitl.statistics`` on arrays already in memory; this times what a quality page
or ``GET /api/v1/agreement`` does: read the reviews of outputs reviewed more than once
from PostgreSQL (under row-level security, as the application's role, in the tenant's
scope) and compute Krippendorff's alpha of a binary criterion (nominal) and of a 1-5
criterion (ordinal), through ``quality.agreement``: the rubric versions the period's
reviews used, then one statement that counts each output's reviews with a window over the
same scan (the overlap filter), ranks the overlapped outputs and extracts the criterion's
JSON value, read in chunks from a server-side cursor and coded; then ``hitl.statistics``.

The bare path, in the same run, is the least code that gets the same figure from the same
rows: one hand-written ``SELECT dense_rank() OVER (ORDER BY output_id), (scores->>'key')::int``
read from a server-side cursor into numpy in chunks, then the bare numpy alpha of
``bench/agreement/run.py``. The ratio is product / bare; peak memory is the process's
maximum RSS.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl_agree_bench \\
        .venv/bin/python bench/agreement/product.py [--units 1000000] [--repeat 3]

The database is created and migrated if missing (``manage.py migrate`` first), and its
rows are generated in SQL once (INSERT ... SELECT generate_series; kept for later runs).
"""

import argparse
import os
import resource
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench", "agreement"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from run import bare_alpha_nominal  # noqa: E402

from hitl.statistics import krippendorff_alpha  # noqa: E402
from hitl.tenancy import as_owner, cross_tenant, tenant_scope  # noqa: E402

RUBRIC = {
    "name": "bench-agreement",
    "criteria": [
        {"key": "correct", "label": "Correct", "kind": "binary"},
        {"key": "helpful", "label": "Helpful", "kind": "graded", "min": 1, "max": 5},
    ],
}
SLUG = "bench-agreement"
RATERS = 3


def tenant_ready(units: int):
    """The bench tenant with ``units`` outputs, each reviewed by 3 people (generated once)."""
    from policies.services import rubric_publish
    from reviews.models import Output, Review
    from reviews.services.onboarding import tenant_onboard
    from tenants.models import Tenant
    from tenants.services import membership_create
    from tests.factories import UserFactory

    with cross_tenant("management_command"):
        tenant = Tenant.objects.filter(slug=SLUG).first()
        if tenant is None:
            tenant = tenant_onboard(slug=SLUG, name="Bench agreement")
    with tenant_scope(tenant):
        rubric = rubric_publish(tenant=tenant, document=RUBRIC)[0]
        have = Output.objects.for_tenant(tenant).count()
        if have == units and Review.objects.for_tenant(tenant).count() == units * RATERS:
            return tenant
        people = []
        for index in range(RATERS):
            from django.contrib.auth import get_user_model

            user = get_user_model().objects.filter(username=f"bench-rater-{index}").first()
            if user is None:
                user = UserFactory(username=f"bench-rater-{index}")
                membership_create(tenant=tenant, user=user, role="reviewer")
            people.append(user.pk)
    print(f"generating {units:,} outputs and {units * RATERS:,} reviews in SQL ...", flush=True)
    started = time.perf_counter()
    with as_owner(), connection.cursor() as cursor:
        # Generated rows are consistent by construction: skip the foreign keys' per-row triggers
        # (the owner is the bench's superuser), which would otherwise queue 4,000,000 checks.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(f"DELETE FROM {Review._meta.db_table} WHERE tenant_id = %s", [tenant.pk])
        cursor.execute(f"DELETE FROM {Output._meta.db_table} WHERE tenant_id = %s", [tenant.pk])
        cursor.execute(
            f"""INSERT INTO {Output._meta.db_table} (id, tenant_id, external_id, application, session_id, input,
                output, trace, metadata, model, content_hash, audit_digest, status, risk_tier, review_required,
                delivery, decision, decision_reason, received_at, judge_plan)
            SELECT gen_random_uuid(), %s, 'b-' || i, 'bench', '', '"q"', 'a', '[]', '{{}}', '', md5(i::text), '',
                'approved', 'low', true, 'deliver', 'approved', '', now(), '[]'
            FROM generate_series(1, %s) AS i""",
            [tenant.pk, units],
        )
        # Three raters agreeing mostly: a true value per output, each rater off by chance.
        cursor.execute(
            f"""INSERT INTO {Review._meta.db_table} (id, tenant_id, output_id, reviewer_id, purpose, decision, scores,
                corrected_output, comment, rubric_id, rubric_version, shown, created_at)
            SELECT gen_random_uuid(), o.tenant_id, o.id, p.reviewer, 'approval', 'approve',
                jsonb_build_object(
                    'correct', CASE WHEN random() < 0.15 THEN NOT t.correct ELSE t.correct END,
                    'helpful', least(5, greatest(1, t.helpful + (CASE WHEN random() < 0.3
                        THEN floor(random() * 3)::int - 1 ELSE 0 END)))),
                '', '', %s, %s, '{{}}', now()
            FROM {Output._meta.db_table} o
            CROSS JOIN LATERAL (SELECT random() < 0.7 AS correct, 1 + floor(random() * 5)::int AS helpful) t
            CROSS JOIN unnest(%s::bigint[]) AS p(reviewer)
            WHERE o.tenant_id = %s""",
            [rubric.pk, rubric.version, people, tenant.pk],
        )
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute(f"ANALYZE {Output._meta.db_table}")
        cursor.execute(f"ANALYZE {Review._meta.db_table}")
    print(f"generated in {time.perf_counter() - started:.0f} s", flush=True)
    return tenant


def bare(tenant, key: str, size: int, level: str) -> float:
    """The least code: hand-written SQL, a server-side cursor in chunks, bare numpy."""
    from reviews.models import Review

    sql = (
        f"SELECT dense_rank() OVER (ORDER BY output_id), "
        f"CASE scores->>'{key}' WHEN 'true' THEN 2 WHEN 'false' THEN 1 ELSE (scores->>'{key}')::int END "
        f"FROM {Review._meta.db_table} WHERE tenant_id = %s"
    )
    units, values = [], []
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, [tenant.pk])
        while chunk := cursor.fetchmany(65_536):
            array = np.array(chunk, dtype=np.int64)
            units.append(array[:, 0])
            values.append(array[:, 1])
    unit, value = np.concatenate(units) - 1, np.concatenate(values).astype(float)
    slot = np.zeros(len(unit), dtype=np.int64)  # rows come by unit: the n-th rating of a unit
    starts = np.flatnonzero(np.diff(unit, prepend=-1))
    counts = np.diff(np.append(starts, len(unit)))
    slot = np.arange(len(unit)) - np.repeat(starts, counts)
    matrix = np.full((int(slot.max()) + 1, int(unit.max()) + 1), np.nan)
    matrix[slot, unit] = value
    if level == "nominal":
        return bare_alpha_nominal(matrix, size)
    return krippendorff_alpha(matrix, level=level)  # the ordinal difference function has no shorter form


def product(tenant, key: str) -> float:
    from quality.agreement import criterion_agreement, criterion_ratings, period_reviews, scales_of

    reviews = period_reviews(tenant=tenant, start=None, end=None)
    scale = next(scale for scale in scales_of(tenant=tenant, queryset=reviews) if scale.key == key)
    ratings = criterion_ratings(reviews, scale)
    return criterion_agreement(scale, ratings.units, ratings.values).alpha


def best_of(repeat: int, fn):
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("bench/agreement/product.py needs DATABASE_URL=postgres://...")
    tenant = tenant_ready(args.units)
    print(
        f"load average (1 min): {os.getloadavg()[0]:.1f}; units {args.units:,}, raters {RATERS}, "
        f"best of {args.repeat}; PostgreSQL as the application's role, in the tenant's scope"
    )
    with tenant_scope(tenant):
        for key, size, level in (("correct", 2, "nominal"), ("helpful", 5, "ordinal")):
            t_product, v_product = best_of(args.repeat, lambda key=key: product(tenant, key))
            t_bare, v_bare = best_of(
                args.repeat, lambda key=key, size=size, level=level: bare(tenant, key, size, level)
            )
            assert abs(v_product - v_bare) < 1e-9, (key, v_product, v_bare)
            label = f"Krippendorff's alpha, {level} ({key})"
            print(
                f"{label:40s}: product {t_product * 1000:8.0f} ms  bare SQL+numpy {t_bare * 1000:8.0f} ms  "
                f"= {t_product / t_bare:.2f}x  (value {v_product:.4f})",
                flush=True,
            )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole run: {peak_mb:.0f} MB (goal: under 500 MB)")


if __name__ == "__main__":
    main()
