-- inference: the role of the model version that produced an insight. 'champion' is what MES sees;
-- 'challenger' rows come from a shadow run beside it (inference/shadow.py) and must never reach MQTT.
--
-- Writers that do not know roles write NULL (the historian writer sends every column of its table spec), so
-- a BEFORE INSERT trigger turns NULL into 'champion'. The column stays nullable so that adding it is cheap on
-- a TimescaleDB hypertable with compressed chunks; readers use coalesce(role, 'champion').
--
-- Keeping challengers out of the outbox: the outbox's own trigger (0040, delivery) copies every new insight
-- row; this migration cannot change it (0040 runs after it on a fresh database and would replace any change).
-- So an AFTER INSERT trigger that fires only for challenger rows removes the row the outbox trigger queued, in
-- the same transaction: no reader of the outbox (MQTT, Sparkplug) ever sees it. Triggers of the same event
-- fire in name order, and insights_outbox_enqueue < insights_shadow_unqueue.

ALTER TABLE insights ADD COLUMN IF NOT EXISTS role text DEFAULT 'champion';

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint WHERE conname = 'insights_role_check') THEN
        ALTER TABLE insights ADD CONSTRAINT insights_role_check CHECK (role IN ('champion', 'challenger'));
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION insights_role_default() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.role := coalesce(NEW.role, 'champion');
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS insights_role_default ON insights;
CREATE TRIGGER insights_role_default BEFORE INSERT ON insights
    FOR EACH ROW EXECUTE FUNCTION insights_role_default();

-- Removes a row the outbox trigger queued in the same transaction: for any insight that must never reach MES
-- (shadow rows here; suppressed repeats use it too, 0045).
CREATE OR REPLACE FUNCTION insights_outbox_unqueue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF to_regclass('insights_outbox') IS NOT NULL THEN
        DELETE FROM insights_outbox WHERE insight_id = NEW.insight_id AND ts = NEW.ts;
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS insights_shadow_unqueue ON insights;
CREATE TRIGGER insights_shadow_unqueue AFTER INSERT ON insights
    FOR EACH ROW WHEN (NEW.role IS DISTINCT FROM 'champion') EXECUTE FUNCTION insights_outbox_unqueue();

REVOKE ALL ON FUNCTION insights_outbox_unqueue() FROM PUBLIC;
