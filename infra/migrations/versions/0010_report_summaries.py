"""report summaries kept current (issue 7): survey scores (NPS by tier...) and fairness from roll-ups.

- report_score_days: per UTC day of submission x score kind x survey x tier at response x channel, the
  responses with a scored answer of the kind, the scored answers, and the positive / negative ones (the
  bands of domain/surveys.py SCORE_BANDS, fixed here: nps 9-10 / 0-6, csat 4-5, ces 5-7).
- report_invitation_targets: the first invitation of each (survey, customer, complaint) with whether a
  response of that key exists (the reports' "invitation" and "answered"); report_invitation_days: their
  counts per UTC day of the first invitation x survey x tier at invitation x channel.

For the fairness report over the whole history:

- report_complaint_clocks: the complaints' clock columns (narrow, no text), with the first-response and
  resolution durations indexed per tier at opening (a median is two index entries at an offset) and the
  complaints whose clocks run (breached or not depending on the time) indexed apart;
- report_complaint_tiers: per tier at opening, the counts of the complaints with settled clocks (stopped
  or paused): complaints, with an SLA, breached, responded, resolved;
- report_tier_reach: per tier now, the live customers, those ever invited and those who ever answered.

Kept current inside PostgreSQL by statement-level triggers (transition tables) on survey_answers,
survey_responses, survey_invitations, complaints and customers, adding deltas with INSERT ... ON CONFLICT
DO UPDATE (no recomputed hot row); a response's deletion subtracts its answers in a row-level BEFORE
DELETE trigger (its answers are gone, by the cascade, when a statement trigger would run). Refreshes of a
customer's invitation targets and reach lock the customer row (FOR NO KEY UPDATE) first, so concurrent
writers of one customer serialize. ``report_summaries_rebuild()`` fills them all from the data (here, and
after bulk loads that bypass the triggers: bench/generate.py).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from infra.migrate import execute_function_script

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NIL = "'00000000-0000-0000-0000-000000000000'::uuid"

TABLES = """
CREATE TABLE report_score_days (
    day timestamptz NOT NULL,
    kind text NOT NULL,
    survey_id uuid NOT NULL,
    tier text,
    channel text NOT NULL,
    responses bigint NOT NULL DEFAULT 0,
    answers bigint NOT NULL DEFAULT 0,
    positive bigint NOT NULL DEFAULT 0,
    negative bigint NOT NULL DEFAULT 0,
    CONSTRAINT uq_report_score_days UNIQUE NULLS NOT DISTINCT (day, kind, survey_id, tier, channel)
);
CREATE TABLE report_invitation_targets (
    survey_id uuid NOT NULL,
    customer_id uuid NOT NULL,
    complaint_key uuid NOT NULL,
    day timestamptz NOT NULL,
    tier text,
    channel text NOT NULL,
    answered boolean NOT NULL,
    PRIMARY KEY (survey_id, customer_id, complaint_key)
);
CREATE TABLE report_invitation_days (
    day timestamptz NOT NULL,
    survey_id uuid NOT NULL,
    tier text,
    channel text NOT NULL,
    invitations bigint NOT NULL DEFAULT 0,
    answered bigint NOT NULL DEFAULT 0,
    CONSTRAINT uq_report_invitation_days UNIQUE NULLS NOT DISTINCT (day, survey_id, tier, channel)
);
"""

FUNCTIONS = f"""
-- 1 positive, -1 negative, 0 neither (domain/surveys.py SCORE_BANDS)
CREATE FUNCTION report_score_band(p_kind text, p_score integer) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_kind = 'nps' THEN CASE WHEN p_score >= 9 THEN 1 WHEN p_score <= 6 THEN -1 ELSE 0 END
        WHEN p_kind = 'csat' THEN CASE WHEN p_score >= 4 THEN 1 ELSE 0 END
        WHEN p_kind = 'ces' THEN CASE WHEN p_score >= 5 THEN 1 ELSE 0 END
        ELSE 0 END
$$;

-- answers added (sign 1) or removed (sign -1) while their response exists
CREATE FUNCTION report_apply_answers(p_response uuid[], p_question uuid[], p_score integer[], p_sign integer[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH d AS (
        SELECT * FROM unnest(p_response, p_question, p_score, p_sign) AS d(response_id, question_id, score, sign)
    ),
    scored AS (
        SELECT r.id AS response_id, q.kind, date_trunc('day', r.submitted_at, 'UTC') AS day, r.survey_id,
               r.tier_at_response AS tier, r.channel, d.score, d.sign
        FROM d JOIN survey_responses r ON r.id = d.response_id JOIN survey_questions q ON q.id = d.question_id
        WHERE d.score IS NOT NULL AND q.kind IN ('nps', 'csat', 'ces')
    ),
    per_response AS (
        SELECT s.day, s.kind, s.survey_id, s.tier, s.channel, sum(s.sign) AS change,
               (SELECT count(*) FROM survey_answers a JOIN survey_questions q ON q.id = a.question_id
                WHERE a.response_id = s.response_id AND q.kind = s.kind AND a.score IS NOT NULL) AS now_count
        FROM scored s GROUP BY s.response_id, s.day, s.kind, s.survey_id, s.tier, s.channel
    )
    INSERT INTO report_score_days AS t (day, kind, survey_id, tier, channel, responses, answers, positive, negative)
    SELECT day, kind, survey_id, tier, channel, sum(responses), sum(answers), sum(positive), sum(negative)
    FROM (
        SELECT day, kind, survey_id, tier, channel, 0 AS responses, sign AS answers,
               CASE WHEN report_score_band(kind, score) = 1 THEN sign ELSE 0 END AS positive,
               CASE WHEN report_score_band(kind, score) = -1 THEN sign ELSE 0 END AS negative
        FROM scored
        UNION ALL
        SELECT day, kind, survey_id, tier, channel,
               (now_count > 0)::integer - ((now_count - change) > 0)::integer, 0, 0, 0
        FROM per_response
    ) x
    GROUP BY day, kind, survey_id, tier, channel
    ON CONFLICT ON CONSTRAINT uq_report_score_days DO UPDATE SET
        responses = t.responses + excluded.responses, answers = t.answers + excluded.answers,
        positive = t.positive + excluded.positive, negative = t.negative + excluded.negative;
END
$$;

-- responses whose day, survey, tier or channel changed: their answers move from the old key to the new
CREATE FUNCTION report_move_responses(p_id uuid[], p_old_day timestamptz[], p_old_survey uuid[],
                                      p_old_tier text[], p_old_channel text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    WITH m AS (
        SELECT * FROM unnest(p_id, p_old_day, p_old_survey, p_old_tier, p_old_channel)
            AS m(id, day, survey_id, tier, channel)
    ),
    c AS (
        SELECT m.day AS old_day, m.survey_id AS old_survey, m.tier AS old_tier, m.channel AS old_channel,
               date_trunc('day', r.submitted_at, 'UTC') AS day, r.survey_id, r.tier_at_response AS tier, r.channel,
               q.kind, count(*) AS answers,
               count(*) FILTER (WHERE report_score_band(q.kind, a.score) = 1) AS positive,
               count(*) FILTER (WHERE report_score_band(q.kind, a.score) = -1) AS negative
        FROM m JOIN survey_responses r ON r.id = m.id
        JOIN survey_answers a ON a.response_id = r.id JOIN survey_questions q ON q.id = a.question_id
        WHERE a.score IS NOT NULL AND q.kind IN ('nps', 'csat', 'ces')
        GROUP BY m.id, m.day, m.survey_id, m.tier, m.channel, r.submitted_at, r.survey_id, r.tier_at_response,
                 r.channel, q.kind
    )
    INSERT INTO report_score_days AS t (day, kind, survey_id, tier, channel, responses, answers, positive, negative)
    SELECT day, kind, survey_id, tier, channel, sum(responses), sum(answers), sum(positive), sum(negative)
    FROM (
        SELECT old_day AS day, kind, old_survey AS survey_id, old_tier AS tier, old_channel AS channel,
               -1 AS responses, -answers AS answers, -positive AS positive, -negative AS negative FROM c
        UNION ALL
        SELECT day, kind, survey_id, tier, channel, 1, answers, positive, negative FROM c
    ) x
    GROUP BY day, kind, survey_id, tier, channel
    ON CONFLICT ON CONSTRAINT uq_report_score_days DO UPDATE SET
        responses = t.responses + excluded.responses, answers = t.answers + excluded.answers,
        positive = t.positive + excluded.positive, negative = t.negative + excluded.negative;
END
$$;

-- the first invitation (and whether it is answered) of these (survey, customer, complaint) keys, again
CREATE FUNCTION report_refresh_targets(p_survey uuid[], p_customer uuid[], p_complaint uuid[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- one refresh of a customer's keys at a time: the next one waits and then reads (new statements, new
    -- snapshots) what the first wrote; the locks are those of an UPDATE of non-key columns
    PERFORM 1 FROM customers c WHERE c.id = ANY(p_customer) ORDER BY c.id FOR NO KEY UPDATE;
    WITH k AS (
        SELECT DISTINCT survey_id, customer_id, coalesce(complaint_key, {NIL}) AS complaint_key
        FROM unnest(p_survey, p_customer, p_complaint) AS k(survey_id, customer_id, complaint_key)
    ),
    gone AS (
        DELETE FROM report_invitation_targets t USING k
        WHERE t.survey_id = k.survey_id AND t.customer_id = k.customer_id AND t.complaint_key = k.complaint_key
        RETURNING t.*
    )
    INSERT INTO report_invitation_days AS t (day, survey_id, tier, channel, invitations, answered)
    SELECT day, survey_id, tier, channel, -count(*), -count(*) FILTER (WHERE answered)
    FROM gone GROUP BY day, survey_id, tier, channel
    ON CONFLICT ON CONSTRAINT uq_report_invitation_days DO UPDATE SET
        invitations = t.invitations + excluded.invitations, answered = t.answered + excluded.answered;

    WITH k AS (
        SELECT DISTINCT survey_id, customer_id, coalesce(complaint_key, {NIL}) AS complaint_key
        FROM unnest(p_survey, p_customer, p_complaint) AS k(survey_id, customer_id, complaint_key)
    ),
    fresh AS (
        INSERT INTO report_invitation_targets (survey_id, customer_id, complaint_key, day, tier, channel, answered)
        SELECT DISTINCT ON (i.survey_id, i.customer_id, coalesce(i.complaint_id, {NIL}))
               i.survey_id, i.customer_id, coalesce(i.complaint_id, {NIL}), date_trunc('day', i.sent_at, 'UTC'),
               i.tier_at_invitation, i.channel,
               EXISTS (SELECT 1 FROM survey_responses x
                       WHERE x.survey_id = i.survey_id AND x.customer_id = i.customer_id
                         AND coalesce(x.complaint_id, {NIL}) = coalesce(i.complaint_id, {NIL}))
        FROM survey_invitations i JOIN k
          ON i.survey_id = k.survey_id AND i.customer_id = k.customer_id
         AND coalesce(i.complaint_id, {NIL}) = k.complaint_key
        ORDER BY i.survey_id, i.customer_id, coalesce(i.complaint_id, {NIL}), i.sent_at, i.id
        RETURNING *
    )
    INSERT INTO report_invitation_days AS t (day, survey_id, tier, channel, invitations, answered)
    SELECT day, survey_id, tier, channel, count(*), count(*) FILTER (WHERE answered)
    FROM fresh GROUP BY day, survey_id, tier, channel
    ON CONFLICT ON CONSTRAINT uq_report_invitation_days DO UPDATE SET
        invitations = t.invitations + excluded.invitations, answered = t.answered + excluded.answered;
END
$$;

CREATE FUNCTION report_summaries_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE report_score_days, report_invitation_targets, report_invitation_days;
    INSERT INTO report_score_days (day, kind, survey_id, tier, channel, responses, answers, positive, negative)
    SELECT date_trunc('day', r.submitted_at, 'UTC'), q.kind, r.survey_id, r.tier_at_response, r.channel,
           count(DISTINCT r.id), count(*),
           count(*) FILTER (WHERE report_score_band(q.kind, a.score) = 1),
           count(*) FILTER (WHERE report_score_band(q.kind, a.score) = -1)
    FROM survey_answers a JOIN survey_responses r ON r.id = a.response_id
    JOIN survey_questions q ON q.id = a.question_id
    WHERE a.score IS NOT NULL AND q.kind IN ('nps', 'csat', 'ces')
    GROUP BY 1, 2, 3, 4, 5;
    INSERT INTO report_invitation_targets (survey_id, customer_id, complaint_key, day, tier, channel, answered)
    SELECT i.survey_id, i.customer_id, i.complaint_key, date_trunc('day', i.sent_at, 'UTC'), i.tier_at_invitation,
           i.channel, x.id IS NOT NULL
    FROM (
        SELECT DISTINCT ON (i.survey_id, i.customer_id, i.complaint_id) i.*,
               coalesce(i.complaint_id, {NIL}) AS complaint_key
        FROM survey_invitations i
        ORDER BY i.survey_id, i.customer_id, i.complaint_id, i.sent_at, i.id
    ) i
    LEFT JOIN survey_responses x
           ON x.survey_id = i.survey_id AND x.customer_id = i.customer_id
          AND coalesce(x.complaint_id, {NIL}) = i.complaint_key;
    INSERT INTO report_invitation_days (day, survey_id, tier, channel, invitations, answered)
    SELECT day, survey_id, tier, channel, count(*), count(*) FILTER (WHERE answered)
    FROM report_invitation_targets GROUP BY 1, 2, 3, 4;
    IF to_regproc('report_fairness_rebuild') IS NOT NULL THEN
        PERFORM report_fairness_rebuild();
    END IF;
END
$$;

-- ---------------------------------------------------------------- triggers

CREATE FUNCTION report_answers_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_apply_answers(array_agg(response_id), array_agg(question_id), array_agg(score::integer),
                                 array_agg(1)) FROM new_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION report_answers_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_apply_answers(array_agg(response_id), array_agg(question_id), array_agg(score::integer),
                                 array_agg(-1)) FROM old_rows;
    RETURN NULL;
END $$;

CREATE FUNCTION report_answers_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_apply_answers(array_agg(response_id), array_agg(question_id), array_agg(score), array_agg(sign))
    FROM (SELECT response_id, question_id, score::integer, 1 AS sign FROM new_rows
          UNION ALL SELECT response_id, question_id, score::integer, -1 FROM old_rows) d;
    RETURN NULL;
END $$;

CREATE FUNCTION report_response_deleting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_score_days AS t (day, kind, survey_id, tier, channel, responses, answers, positive, negative)
    SELECT date_trunc('day', OLD.submitted_at, 'UTC'), q.kind, OLD.survey_id, OLD.tier_at_response, OLD.channel,
           -1, -count(*), -count(*) FILTER (WHERE report_score_band(q.kind, a.score) = 1),
           -count(*) FILTER (WHERE report_score_band(q.kind, a.score) = -1)
    FROM survey_answers a JOIN survey_questions q ON q.id = a.question_id
    WHERE a.response_id = OLD.id AND a.score IS NOT NULL AND q.kind IN ('nps', 'csat', 'ces')
    GROUP BY q.kind
    ON CONFLICT ON CONSTRAINT uq_report_score_days DO UPDATE SET
        responses = t.responses + excluded.responses, answers = t.answers + excluded.answers,
        positive = t.positive + excluded.positive, negative = t.negative + excluded.negative;
    RETURN OLD;
END $$;

CREATE FUNCTION report_responses_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_move_responses(array_agg(o.id), array_agg(date_trunc('day', o.submitted_at, 'UTC')),
                                  array_agg(o.survey_id), array_agg(o.tier_at_response), array_agg(o.channel))
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE (date_trunc('day', o.submitted_at, 'UTC'), o.survey_id, o.tier_at_response, o.channel)
          IS DISTINCT FROM (date_trunc('day', n.submitted_at, 'UTC'), n.survey_id, n.tier_at_response, n.channel);
    PERFORM report_refresh_targets(array_agg(survey_id), array_agg(customer_id), array_agg(complaint_id))
    FROM (SELECT survey_id, customer_id, complaint_id FROM old_rows
          UNION SELECT survey_id, customer_id, complaint_id FROM new_rows) k;
    RETURN NULL;
END $$;

CREATE FUNCTION report_keys_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_refresh_targets(array_agg(survey_id), array_agg(customer_id), array_agg(complaint_id))
    FROM (SELECT DISTINCT survey_id, customer_id, complaint_id FROM new_rows) k;
    RETURN NULL;
END $$;

CREATE FUNCTION report_keys_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_refresh_targets(array_agg(survey_id), array_agg(customer_id), array_agg(complaint_id))
    FROM (SELECT DISTINCT survey_id, customer_id, complaint_id FROM old_rows) k;
    RETURN NULL;
END $$;

CREATE FUNCTION report_keys_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM report_refresh_targets(array_agg(survey_id), array_agg(customer_id), array_agg(complaint_id))
    FROM (SELECT survey_id, customer_id, complaint_id FROM old_rows
          UNION SELECT survey_id, customer_id, complaint_id FROM new_rows) k;
    RETURN NULL;
END $$;
"""


def _statement_triggers(*specs: tuple[str, str, str, str, str]) -> tuple[str, str]:
    """CREATE and DROP of statement-level AFTER INSERT / DELETE / UPDATE triggers with transition tables:
    (trigger name prefix, table, insert function, delete function, update function)."""
    create, drop = [], []
    for prefix, table, on_insert, on_delete, on_update in specs:
        create.append(
            f"CREATE TRIGGER {prefix}_ins AFTER INSERT ON {table}\n"
            f"    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {on_insert}();\n"
            f"CREATE TRIGGER {prefix}_del AFTER DELETE ON {table}\n"
            f"    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {on_delete}();\n"
            f"CREATE TRIGGER {prefix}_upd AFTER UPDATE ON {table}\n"
            f"    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT\n"
            f"    EXECUTE FUNCTION {on_update}();\n"
        )
        drop[:0] = [f"DROP TRIGGER IF EXISTS {prefix}_{op} ON {table};\n" for op in ("upd", "del", "ins")]
    return "\n" + "".join(create), "\n" + "".join(drop)


_SCORE_TRIGGERS, _SCORE_TRIGGERS_DROP = _statement_triggers(
    ("report_answers", "survey_answers", "report_answers_inserted", "report_answers_deleted", "report_answers_updated"),
    ("report_responses", "survey_responses", "report_keys_inserted", "report_keys_deleted", "report_responses_updated"),
    ("report_invitations", "survey_invitations", "report_keys_inserted", "report_keys_deleted", "report_keys_updated"),
)
TRIGGERS = (
    _SCORE_TRIGGERS
    + """CREATE TRIGGER report_responses_deleting BEFORE DELETE ON survey_responses
    FOR EACH ROW EXECUTE FUNCTION report_response_deleting();
"""
)

DROP = (
    _SCORE_TRIGGERS_DROP
    + """DROP TRIGGER IF EXISTS report_responses_deleting ON survey_responses;
DROP FUNCTION IF EXISTS report_keys_updated(), report_keys_deleted(), report_keys_inserted(),
    report_responses_updated(), report_response_deleting(), report_answers_updated(), report_answers_deleted(),
    report_answers_inserted(), report_summaries_rebuild(), report_refresh_targets(uuid[], uuid[], uuid[]),
    report_move_responses(uuid[], timestamptz[], uuid[], text[], text[]),
    report_apply_answers(uuid[], uuid[], integer[], integer[]), report_score_band(text, integer);
DROP TABLE IF EXISTS report_invitation_days, report_invitation_targets, report_score_days;
"""
)

# ---------------------------------------------------------------- the fairness report (unbounded range)

CLOCK_COLUMNS = (
    "tier_at_open, opened_at, first_response_due_at, resolution_due_at, first_responded_at, resolved_at,"
    " paused_since, paused_seconds, first_response_breached, resolution_breached"
)
CLOCK_VALUES = (
    "extract(epoch FROM {k}.first_responded_at - {k}.opened_at)::float8,"
    " (extract(epoch FROM {k}.resolved_at - {k}.opened_at) - {k}.paused_seconds)::float8"
)

# clocks stopped (or paused): breached or not whatever now() is (infra/sla.py breached_sql, frozen here)
SETTLED = (
    "(({k}.first_response_due_at IS NULL OR {k}.first_responded_at IS NOT NULL)"
    " AND ({k}.resolution_due_at IS NULL OR {k}.resolved_at IS NOT NULL OR {k}.paused_since IS NOT NULL))"
)
BREACHED = (
    "({k}.first_response_breached OR {k}.resolution_breached"
    " OR ({k}.first_response_due_at IS NOT NULL"
    " AND coalesce({k}.first_responded_at, now()) > {k}.first_response_due_at)"
    " OR ({k}.resolution_due_at IS NOT NULL"
    " AND coalesce({k}.resolved_at, {k}.paused_since, now()) > {k}.resolution_due_at))"
)


def _settled_counts(k: str, sign: str) -> str:
    """The counts of the settled complaints among the rows ``k``, times ``sign``, per tier at opening."""
    return f"""SELECT {k}.tier_at_open AS tier, {sign} * count(*) AS complaints,
               {sign} * count(*) FILTER (WHERE {k}.first_response_due_at IS NOT NULL
                                          OR {k}.resolution_due_at IS NOT NULL) AS with_sla,
               {sign} * count(*) FILTER (WHERE {BREACHED.format(k=k)}) AS breached,
               {sign} * count({k}.first_responded_at) AS responded, {sign} * count({k}.resolved_at) AS resolved
           FROM {{rows}} {k} WHERE {SETTLED.format(k=k)} GROUP BY {k}.tier_at_open"""


FAIRNESS_TABLES = """
CREATE TABLE report_complaint_clocks (
    id uuid PRIMARY KEY,
    tier_at_open text,
    opened_at timestamptz NOT NULL,
    first_response_due_at timestamptz,
    resolution_due_at timestamptz,
    first_responded_at timestamptz,
    resolved_at timestamptz,
    paused_since timestamptz,
    paused_seconds integer NOT NULL,
    first_response_breached boolean NOT NULL,
    resolution_breached boolean NOT NULL,
    first_response_s float8,
    resolution_s float8,
    running boolean GENERATED ALWAYS AS (NOT ((first_response_due_at IS NULL OR first_responded_at IS NOT NULL)
        AND (resolution_due_at IS NULL OR resolved_at IS NOT NULL OR paused_since IS NOT NULL))) STORED
);
CREATE INDEX ix_report_complaint_clocks_running ON report_complaint_clocks (tier_at_open) WHERE running;
CREATE TABLE report_complaint_tiers (
    tier text,
    complaints bigint NOT NULL DEFAULT 0,
    with_sla bigint NOT NULL DEFAULT 0,
    breached bigint NOT NULL DEFAULT 0,
    responded bigint NOT NULL DEFAULT 0,
    resolved bigint NOT NULL DEFAULT 0,
    CONSTRAINT uq_report_complaint_tiers UNIQUE NULLS NOT DISTINCT (tier)
);
CREATE INDEX ix_report_complaint_clocks_first_response ON report_complaint_clocks (tier_at_open, first_response_s)
    WHERE first_response_s IS NOT NULL;
CREATE INDEX ix_report_complaint_clocks_resolution ON report_complaint_clocks (tier_at_open, resolution_s)
    WHERE resolution_s IS NOT NULL;
CREATE TABLE report_tier_reach (
    tier text,
    customers bigint NOT NULL DEFAULT 0,
    invited bigint NOT NULL DEFAULT 0,
    answered bigint NOT NULL DEFAULT 0,
    CONSTRAINT uq_report_tier_reach UNIQUE NULLS NOT DISTINCT (tier)
);
"""

FAIRNESS_FUNCTIONS = f"""
CREATE FUNCTION report_reach_apply(p_tier text[], p_customers integer[], p_invited integer[], p_answered integer[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_tier_reach AS t (tier, customers, invited, answered)
    SELECT tier, sum(customers), sum(invited), sum(answered)
    FROM unnest(p_tier, p_customers, p_invited, p_answered) AS d(tier, customers, invited, answered)
    GROUP BY tier
    HAVING sum(customers) <> 0 OR sum(invited) <> 0 OR sum(answered) <> 0
    ON CONFLICT ON CONSTRAINT uq_report_tier_reach DO UPDATE SET
        customers = t.customers + excluded.customers, invited = t.invited + excluded.invited,
        answered = t.answered + excluded.answered;
END
$$;

-- customers whose invitations (p_answers false) or responses (true) changed by p_change rows
CREATE FUNCTION report_reach_activity(p_customer uuid[], p_change integer[], p_answers boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- as report_refresh_targets: the customers' tier and their counts read after any concurrent change
    PERFORM 1 FROM customers c WHERE c.id = ANY(p_customer) ORDER BY c.id FOR NO KEY UPDATE;
    PERFORM report_reach_apply(array_agg(f.tier), array_agg(0),
                               array_agg(CASE WHEN p_answers THEN 0 ELSE f.flip END),
                               array_agg(CASE WHEN p_answers THEN f.flip ELSE 0 END))
    FROM (
        WITH d AS (
            SELECT customer_id, sum(change) AS change
            FROM unnest(p_customer, p_change) AS d(customer_id, change) GROUP BY customer_id
        ),
        n AS (
            SELECT c.tier_code AS tier, d.change,
                   CASE WHEN p_answers
                        THEN (SELECT count(*) FROM survey_responses r WHERE r.customer_id = d.customer_id)
                        ELSE (SELECT count(*) FROM survey_invitations i WHERE i.customer_id = d.customer_id)
                   END AS now_count
            FROM d JOIN customers c ON c.id = d.customer_id
            WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL AND d.change <> 0
        )
        SELECT n.tier, (n.now_count > 0)::integer - ((n.now_count - n.change) > 0)::integer AS flip FROM n
    ) f
    WHERE f.flip <> 0;
END
$$;

CREATE FUNCTION report_customers_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM report_reach_apply(array_agg(tier), array_agg(1), array_agg(invited), array_agg(answered))
        FROM (SELECT n.tier_code AS tier,
                     EXISTS (SELECT 1 FROM survey_invitations i WHERE i.customer_id = n.id)::integer AS invited,
                     EXISTS (SELECT 1 FROM survey_responses r WHERE r.customer_id = n.id)::integer AS answered
              FROM new_rows n WHERE n.deleted_at IS NULL AND n.merged_into_id IS NULL) x;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM report_reach_apply(array_agg(tier), array_agg(-1), array_agg(-invited), array_agg(-answered))
        FROM (SELECT o.tier_code AS tier,
                     EXISTS (SELECT 1 FROM survey_invitations i WHERE i.customer_id = o.id)::integer AS invited,
                     EXISTS (SELECT 1 FROM survey_responses r WHERE r.customer_id = o.id)::integer AS answered
              FROM old_rows o WHERE o.deleted_at IS NULL AND o.merged_into_id IS NULL) x;
    ELSE
        PERFORM report_reach_apply(array_agg(tier), array_agg(sign), array_agg(sign * invited),
                                   array_agg(sign * answered))
        FROM (
            SELECT y.tier, y.sign,
                   EXISTS (SELECT 1 FROM survey_invitations i WHERE i.customer_id = y.id)::integer AS invited,
                   EXISTS (SELECT 1 FROM survey_responses r WHERE r.customer_id = y.id)::integer AS answered
            FROM (
                SELECT o.id, o.tier_code AS tier, -1 AS sign, o.deleted_at IS NULL AND o.merged_into_id IS NULL AS live
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE (o.tier_code, o.deleted_at IS NULL AND o.merged_into_id IS NULL)
                      IS DISTINCT FROM (n.tier_code, n.deleted_at IS NULL AND n.merged_into_id IS NULL)
                UNION ALL
                SELECT n.id, n.tier_code, 1, n.deleted_at IS NULL AND n.merged_into_id IS NULL
                FROM old_rows o JOIN new_rows n ON n.id = o.id
                WHERE (o.tier_code, o.deleted_at IS NULL AND o.merged_into_id IS NULL)
                      IS DISTINCT FROM (n.tier_code, n.deleted_at IS NULL AND n.merged_into_id IS NULL)
            ) y WHERE y.live
        ) x;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_activity_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    answers boolean := TG_TABLE_NAME = 'survey_responses';
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM report_reach_activity(array_agg(customer_id), array_agg(1), answers) FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM report_reach_activity(array_agg(customer_id), array_agg(-1), answers) FROM old_rows;
    ELSE
        PERFORM report_reach_activity(array_agg(customer_id), array_agg(change), answers)
        FROM (SELECT customer_id, 1 AS change FROM new_rows UNION ALL SELECT customer_id, -1 FROM old_rows) x;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_complaints_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM report_complaint_clocks k USING old_rows o WHERE k.id = o.id;
    ELSE  -- an id never changes
        INSERT INTO report_complaint_clocks AS k (id, {CLOCK_COLUMNS}, first_response_s, resolution_s)
        SELECT n.id, {", ".join("n." + c.strip() for c in CLOCK_COLUMNS.split(","))}, {CLOCK_VALUES.format(k="n")}
        FROM new_rows n
        ON CONFLICT (id) DO UPDATE SET
            {", ".join(f"{c.strip()} = excluded.{c.strip()}" for c in CLOCK_COLUMNS.split(","))},
            first_response_s = excluded.first_response_s, resolution_s = excluded.resolution_s
        WHERE ({", ".join("k." + c.strip() for c in CLOCK_COLUMNS.split(","))})
              IS DISTINCT FROM ({", ".join("excluded." + c.strip() for c in CLOCK_COLUMNS.split(","))});
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO report_complaint_tiers AS t (tier, complaints, with_sla, breached, responded, resolved)
        SELECT tier, sum(complaints), sum(with_sla), sum(breached), sum(responded), sum(resolved)
        FROM ({_settled_counts("n", "1").format(rows="new_rows")}) x
        GROUP BY tier
        ON CONFLICT ON CONSTRAINT uq_report_complaint_tiers DO UPDATE SET
            complaints = t.complaints + excluded.complaints, with_sla = t.with_sla + excluded.with_sla,
            breached = t.breached + excluded.breached, responded = t.responded + excluded.responded,
            resolved = t.resolved + excluded.resolved;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO report_complaint_tiers AS t (tier, complaints, with_sla, breached, responded, resolved)
        SELECT tier, sum(complaints), sum(with_sla), sum(breached), sum(responded), sum(resolved)
        FROM ({_settled_counts("o", "-1").format(rows="old_rows")}) x
        GROUP BY tier
        ON CONFLICT ON CONSTRAINT uq_report_complaint_tiers DO UPDATE SET
            complaints = t.complaints + excluded.complaints, with_sla = t.with_sla + excluded.with_sla,
            breached = t.breached + excluded.breached, responded = t.responded + excluded.responded,
            resolved = t.resolved + excluded.resolved;
    ELSE
        INSERT INTO report_complaint_tiers AS t (tier, complaints, with_sla, breached, responded, resolved)
        SELECT tier, sum(complaints), sum(with_sla), sum(breached), sum(responded), sum(resolved)
        FROM ({_settled_counts("n", "1").format(rows="new_rows")}
              UNION ALL {_settled_counts("o", "-1").format(rows="old_rows")}) x
        GROUP BY tier
        HAVING sum(complaints) <> 0 OR sum(with_sla) <> 0 OR sum(breached) <> 0 OR sum(responded) <> 0
            OR sum(resolved) <> 0
        ON CONFLICT ON CONSTRAINT uq_report_complaint_tiers DO UPDATE SET
            complaints = t.complaints + excluded.complaints, with_sla = t.with_sla + excluded.with_sla,
            breached = t.breached + excluded.breached, responded = t.responded + excluded.responded,
            resolved = t.resolved + excluded.resolved;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION report_fairness_rebuild() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE report_complaint_clocks, report_tier_reach, report_complaint_tiers;
    INSERT INTO report_complaint_tiers (tier, complaints, with_sla, breached, responded, resolved)
    {_settled_counts("k", "1").format(rows="complaints")};
    INSERT INTO report_complaint_clocks (id, {CLOCK_COLUMNS}, first_response_s, resolution_s)
    SELECT k.id, {", ".join("k." + c.strip() for c in CLOCK_COLUMNS.split(","))}, {CLOCK_VALUES.format(k="k")}
    FROM complaints k;
    INSERT INTO report_tier_reach (tier, customers, invited, answered)
    SELECT c.tier_code, count(*), count(i.customer_id), count(r.customer_id)
    FROM customers c
    LEFT JOIN (SELECT DISTINCT customer_id FROM survey_invitations) i ON i.customer_id = c.id
    LEFT JOIN (SELECT DISTINCT customer_id FROM survey_responses) r ON r.customer_id = c.id
    WHERE c.deleted_at IS NULL AND c.merged_into_id IS NULL
    GROUP BY c.tier_code;
END
$$;
"""

FAIRNESS_TRIGGERS, _FAIRNESS_TRIGGERS_DROP = _statement_triggers(
    ("report_customers", "customers", *("report_customers_changed",) * 3),
    ("report_reach_invitations", "survey_invitations", *("report_activity_changed",) * 3),
    ("report_reach_responses", "survey_responses", *("report_activity_changed",) * 3),
    ("report_complaints", "complaints", *("report_complaints_changed",) * 3),
)

FAIRNESS_DROP = (
    _FAIRNESS_TRIGGERS_DROP
    + """DROP FUNCTION IF EXISTS report_fairness_rebuild(), report_complaints_changed(), report_activity_changed(),
    report_customers_changed(), report_reach_activity(uuid[], integer[], boolean),
    report_reach_apply(text[], integer[], integer[], integer[]);
DROP TABLE IF EXISTS report_complaint_tiers, report_tier_reach, report_complaint_clocks;
"""
)



def upgrade() -> None:
    execute_function_script(TABLES + FUNCTIONS + TRIGGERS + FAIRNESS_TABLES + FAIRNESS_FUNCTIONS + FAIRNESS_TRIGGERS)
    op.execute(sa.text("SELECT report_summaries_rebuild()"))


def downgrade() -> None:
    execute_function_script(FAIRNESS_DROP + DROP)
