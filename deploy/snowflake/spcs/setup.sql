-- fhir-assets inside Snowflake: Dagster on Snowpark Container Services, in order.
-- Run deploy/snowflake/bootstrap.sql first: it creates the FHIR_ASSETS database and its FHIR_RAW
-- schema, the FHIR_LOADER role that lands the raw tables, the FHIR_WH warehouse and the
-- FHIR_SERVICE key-pair user (every name: deploy/snowflake/names.yaml).
-- This file adds the Dagster side: a schema for its objects, the image repository, the network
-- rule and external access integration for the FHIR server, the secrets, the compute pool, and
-- the two services (postgres-service.yaml, dagster-service.yaml).

-- 1. Who runs it: a role for the services, owned by SYSADMIN, that may act as the pipeline's
--    role. The Snowflake connection inside the services logs in as bootstrap.sql's FHIR_SERVICE
--    (key pair: no password exists to leak; its private half is the SNOWFLAKE_PRIVATE_KEY
--    secret of step 5, its public half set on the user by bootstrap.sql).
USE ROLE ACCOUNTADMIN;
CREATE ROLE IF NOT EXISTS FHIR_ASSETS_DAGSTER;
GRANT ROLE FHIR_ASSETS_DAGSTER TO ROLE SYSADMIN;
GRANT ROLE FHIR_LOADER TO ROLE FHIR_ASSETS_DAGSTER;
GRANT CREATE COMPUTE POOL ON ACCOUNT TO ROLE FHIR_ASSETS_DAGSTER;
GRANT BIND SERVICE ENDPOINT ON ACCOUNT TO ROLE FHIR_ASSETS_DAGSTER;

-- 2. A schema for the Dagster objects, next to the data it lands.
USE ROLE SYSADMIN;
CREATE SCHEMA IF NOT EXISTS FHIR_ASSETS.DAGSTER;
GRANT USAGE ON DATABASE FHIR_ASSETS TO ROLE FHIR_ASSETS_DAGSTER;
GRANT ALL ON SCHEMA FHIR_ASSETS.DAGSTER TO ROLE FHIR_ASSETS_DAGSTER;

-- 3. The image repository. Push the images from a workstation (docker login with a Snowflake
--    user, repository_url from SHOW IMAGE REPOSITORIES):
--      docker build -f deploy/Dockerfile -t <repository_url>/fhir-assets:0.1.0 . && docker push ...
--      docker pull postgres:16 && docker tag postgres:16 <repository_url>/postgres:16 && docker push ...
USE ROLE FHIR_ASSETS_DAGSTER;
CREATE IMAGE REPOSITORY IF NOT EXISTS FHIR_ASSETS.DAGSTER.IMAGES;

-- 4. Egress: the FHIR server's host (API and token endpoint on the same host at Epic) and the
--    account's own public endpoint (below); the services reach nothing else on the internet.
CREATE OR REPLACE NETWORK RULE FHIR_ASSETS.DAGSTER.FHIR_SERVER_EGRESS
  TYPE = HOST_PORT
  MODE = EGRESS
  VALUE_LIST = ('fhir.epic.example-hospital.org:443');
-- The account's own endpoint: fhir_assets/definitions.py logs in to Snowflake with the service
-- user's key pair, a login Snowflake documents from a container through an external access
-- integration to the public <account>.snowflakecomputing.com: this rule. dagster-service.yaml sets
-- SNOWFLAKE_HOST to this host (SPCS would otherwise inject its internal host, meant for the
-- session token); an account network policy, if any, must admit the service's egress too.
-- A container can instead use the session token Snowflake mounts (/snowflake/session/token,
-- with the internal host), which needs no egress; once definitions.py reads those
-- (deploy/README.md, "Inside Snowflake"), drop this rule and the integration allows the FHIR
-- host alone.
CREATE OR REPLACE NETWORK RULE FHIR_ASSETS.DAGSTER.SNOWFLAKE_ACCOUNT_EGRESS
  TYPE = HOST_PORT
  MODE = EGRESS
  VALUE_LIST = ('example-hospital.snowflakecomputing.com:443');

-- 5. Secrets, stored by Snowflake and mounted into the containers (dagster-service.yaml):
--    never in the image, the spec or this file. SnowSQL substitutes the values on the client
--    (never a SET, which query history would keep):
--      snowsql -o variable_substitution=true -D dagster_pg_password="$(cat pg.txt)" \
--        -D fhir_client_id=... -D fhir_private_key_pem="$(cat fhir-key.pem)" \
--        -D snowflake_private_key_pem="$(cat snowflake-key.p8)" -f deploy/snowflake/spcs/setup.sql
CREATE OR REPLACE SECRET FHIR_ASSETS.DAGSTER.DAGSTER_PG_PASSWORD
  TYPE = GENERIC_STRING SECRET_STRING = '&dagster_pg_password';
CREATE OR REPLACE SECRET FHIR_ASSETS.DAGSTER.FHIR_CLIENT_ID
  TYPE = GENERIC_STRING SECRET_STRING = '&fhir_client_id';
CREATE OR REPLACE SECRET FHIR_ASSETS.DAGSTER.FHIR_PRIVATE_KEY
  TYPE = GENERIC_STRING SECRET_STRING = '&fhir_private_key_pem';
CREATE OR REPLACE SECRET FHIR_ASSETS.DAGSTER.SNOWFLAKE_PRIVATE_KEY
  TYPE = GENERIC_STRING SECRET_STRING = '&snowflake_private_key_pem';

USE ROLE ACCOUNTADMIN;
CREATE OR REPLACE EXTERNAL ACCESS INTEGRATION FHIR_ASSETS_FHIR_ACCESS
  ALLOWED_NETWORK_RULES = (FHIR_ASSETS.DAGSTER.FHIR_SERVER_EGRESS, FHIR_ASSETS.DAGSTER.SNOWFLAKE_ACCOUNT_EGRESS)
  ENABLED = TRUE;
GRANT USAGE ON INTEGRATION FHIR_ASSETS_FHIR_ACCESS TO ROLE FHIR_ASSETS_DAGSTER;

-- 6. The compute pool and the instance's Postgres (block volume; its name is DAGSTER_PG_HOST).
--    CPU_X64_S: 3 vCPU / 13 GiB per node, room for the three Dagster containers and two runs;
--    a second node takes Postgres.
USE ROLE FHIR_ASSETS_DAGSTER;
CREATE COMPUTE POOL IF NOT EXISTS FHIR_ASSETS_POOL
  MIN_NODES = 2
  MAX_NODES = 2
  INSTANCE_FAMILY = CPU_X64_S
  AUTO_SUSPEND_SECS = 0;  -- the daemon runs schedules and sensors around the clock
CREATE STAGE IF NOT EXISTS FHIR_ASSETS.DAGSTER.SPECS;
-- PUT file://deploy/snowflake/spcs/postgres-service.yaml @FHIR_ASSETS.DAGSTER.SPECS AUTO_COMPRESS=FALSE;
-- PUT file://deploy/snowflake/spcs/dagster-service.yaml @FHIR_ASSETS.DAGSTER.SPECS AUTO_COMPRESS=FALSE;
-- (PUT runs from SnowSQL or the Snowflake CLI on the workstation that holds the repository.)
CREATE SERVICE IF NOT EXISTS FHIR_ASSETS.DAGSTER.FHIR_ASSETS_POSTGRES
  IN COMPUTE POOL FHIR_ASSETS_POOL
  FROM @FHIR_ASSETS.DAGSTER.SPECS SPECIFICATION_FILE = 'postgres-service.yaml'
  MIN_INSTANCES = 1 MAX_INSTANCES = 1;
SHOW SERVICES LIKE 'FHIR_ASSETS_POSTGRES' IN SCHEMA FHIR_ASSETS.DAGSTER;  -- dns_name column

-- 7. Dagster: webserver, daemon, code server; egress through the integration of step 5.
CREATE SERVICE IF NOT EXISTS FHIR_ASSETS.DAGSTER.FHIR_ASSETS_DAGSTER
  IN COMPUTE POOL FHIR_ASSETS_POOL
  FROM @FHIR_ASSETS.DAGSTER.SPECS SPECIFICATION_FILE = 'dagster-service.yaml'
  EXTERNAL_ACCESS_INTEGRATIONS = (FHIR_ASSETS_FHIR_ACCESS)
  MIN_INSTANCES = 1 MAX_INSTANCES = 1;  -- one daemon per instance, never two
GRANT SERVICE ROLE FHIR_ASSETS.DAGSTER.FHIR_ASSETS_DAGSTER!DAGSTER_UI_USER TO ROLE FHIR_ASSETS_DAGSTER;

-- 8. Check: the containers READY, the UI's URL (ingress_url), the logs of a container.
SELECT SYSTEM$GET_SERVICE_STATUS('FHIR_ASSETS.DAGSTER.FHIR_ASSETS_DAGSTER');
SHOW ENDPOINTS IN SERVICE FHIR_ASSETS.DAGSTER.FHIR_ASSETS_DAGSTER;
SELECT SYSTEM$GET_SERVICE_LOGS('FHIR_ASSETS.DAGSTER.FHIR_ASSETS_DAGSTER', 0, 'daemon', 50);

-- 9. Backups of the instance: a daily snapshot of the Postgres block volume (a task, so it runs
--    without anyone remembering it).
CREATE TASK IF NOT EXISTS FHIR_ASSETS.DAGSTER.SNAPSHOT_DAGSTER_POSTGRES
  WAREHOUSE = FHIR_WH
  SCHEDULE = 'USING CRON 30 3 * * * UTC'
AS
  CREATE OR REPLACE SNAPSHOT FHIR_ASSETS.DAGSTER.DAGSTER_POSTGRES_DAILY
    FROM SERVICE FHIR_ASSETS.DAGSTER.FHIR_ASSETS_POSTGRES VOLUME "pgdata" INSTANCE 0;
ALTER TASK FHIR_ASSETS.DAGSTER.SNAPSHOT_DAGSTER_POSTGRES RESUME;

-- Upgrades: push a new image tag, edit the tag in dagster-service.yaml, PUT it, then
--   ALTER SERVICE FHIR_ASSETS.DAGSTER.FHIR_ASSETS_DAGSTER FROM @FHIR_ASSETS.DAGSTER.SPECS
--     SPECIFICATION_FILE = 'dagster-service.yaml';
-- Runs in flight are ended by the restart; run monitoring marks them failed and run_retries
-- relaunches them (max 2), landing being an idempotent MERGE.
