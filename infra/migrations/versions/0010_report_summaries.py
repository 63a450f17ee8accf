"""report summaries kept current (issue 7): the survey-score report (NPS by tier...) from daily roll-ups.

- report_score_days: per UTC day of submission x score kind x survey x tier at response x channel, the
  responses with a scored answer of the kind, the scored answers, and the positive / negative ones (the
  bands of domain/surveys.py SCORE_BANDS, fixed here: nps 9-10 / 0-6, csat 4-5, ces 5-7).
- report_invitation_targets: the first invitation of each (survey, customer, complaint) with whether a
  response of that key exists (the reports' "invitation" and "answered"); report_invitation_days: their
  counts per UTC day of the first invitation x survey x tier at invitation x channel.

Kept current inside PostgreSQL by statement-level triggers (transition tables) on survey_answers,
survey_responses and survey_invitations, adding deltas with INSERT ... ON CONFLICT DO UPDATE (no
recomputed hot row); a response's deletion subtracts its answers in a row-level BEFORE DELETE trigger
(its answers are gone, by the cascade, when a statement trigger would run). ``report_summaries_rebuild()``
fills them from the data (here, and after bulk loads that bypass the triggers: bench/generate.py).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NIL = "'00000000-0000-0000-0000-000000000000'::uuid"

TABLES = f"""
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
RETURNS void LANGUAGE sql AS $$
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
        positive = t.positive + excluded.positive, negative = t.negative + excluded.negative
$$;

-- responses whose day, survey, tier or channel changed: their answers move from the old key to the new
CREATE FUNCTION report_move_responses(p_id uuid[], p_old_day timestamptz[], p_old_survey uuid[],
                                      p_old_tier text[], p_old_channel text[])
RETURNS void LANGUAGE sql AS $$
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
        positive = t.positive + excluded.positive, negative = t.negative + excluded.negative
$$;

-- the first invitation (and whether it is answered) of these (survey, customer, complaint) keys, again
CREATE FUNCTION report_refresh_targets(p_survey uuid[], p_customer uuid[], p_complaint uuid[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
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

TRIGGERS = """
CREATE TRIGGER report_answers_ins AFTER INSERT ON survey_answers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_answers_inserted();
CREATE TRIGGER report_answers_del AFTER DELETE ON survey_answers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_answers_deleted();
CREATE TRIGGER report_answers_upd AFTER UPDATE ON survey_answers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION report_answers_updated();
CREATE TRIGGER report_responses_deleting BEFORE DELETE ON survey_responses
    FOR EACH ROW EXECUTE FUNCTION report_response_deleting();
CREATE TRIGGER report_responses_ins AFTER INSERT ON survey_responses
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_keys_inserted();
CREATE TRIGGER report_responses_del AFTER DELETE ON survey_responses
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_keys_deleted();
CREATE TRIGGER report_responses_upd AFTER UPDATE ON survey_responses
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION report_responses_updated();
CREATE TRIGGER report_invitations_ins AFTER INSERT ON survey_invitations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION report_keys_inserted();
CREATE TRIGGER report_invitations_del AFTER DELETE ON survey_invitations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION report_keys_deleted();
CREATE TRIGGER report_invitations_upd AFTER UPDATE ON survey_invitations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION report_keys_updated();
"""

DROP = """
DROP TRIGGER IF EXISTS report_invitations_upd ON survey_invitations;
DROP TRIGGER IF EXISTS report_invitations_del ON survey_invitations;
DROP TRIGGER IF EXISTS report_invitations_ins ON survey_invitations;
DROP TRIGGER IF EXISTS report_responses_upd ON survey_responses;
DROP TRIGGER IF EXISTS report_responses_del ON survey_responses;
DROP TRIGGER IF EXISTS report_responses_ins ON survey_responses;
DROP TRIGGER IF EXISTS report_responses_deleting ON survey_responses;
DROP TRIGGER IF EXISTS report_answers_upd ON survey_answers;
DROP TRIGGER IF EXISTS report_answers_del ON survey_answers;
DROP TRIGGER IF EXISTS report_answers_ins ON survey_answers;
DROP FUNCTION IF EXISTS report_keys_updated(), report_keys_deleted(), report_keys_inserted(),
    report_responses_updated(), report_response_deleting(), report_answers_updated(), report_answers_deleted(),
    report_answers_inserted(), report_summaries_rebuild(), report_refresh_targets(uuid[], uuid[], uuid[]),
    report_move_responses(uuid[], timestamptz[], uuid[], text[], text[]),
    report_apply_answers(uuid[], uuid[], integer[], integer[]), report_score_band(text, integer);
DROP TABLE IF EXISTS report_invitation_days, report_invitation_targets, report_score_days;
"""


def _script(sql: str) -> None:
    # Many statements in one script: asyncpg's simple-query protocol runs them as one (no prepare), as 0003.
    from sqlalchemy.util import await_

    driver = op.get_bind().connection.driver_connection
    await_(driver.execute(sql))


def upgrade() -> None:
    _script(TABLES + FUNCTIONS + TRIGGERS)
    op.execute(sa.text("SELECT report_summaries_rebuild()"))


def downgrade() -> None:
    _script(DROP)
