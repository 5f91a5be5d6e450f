-- fhir-assets on Snowflake: everything the service needs, created once by an administrator
-- (run as ACCOUNTADMIN, or split between SECURITYADMIN for roles/users/grants and SYSADMIN
-- for the warehouse, database and schemas). Re-running it changes nothing.
--
-- Names used here (all of them: deploy/snowflake/names.yaml): role FHIR_LOADER, warehouse
-- FHIR_WH, database FHIR_ASSETS, service user FHIR_SERVICE. Then set FHIR_WAREHOUSE=snowflake, SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER=FHIR_SERVICE,
-- SNOWFLAKE_PRIVATE_KEY_PATH, SNOWFLAKE_ROLE=FHIR_LOADER, SNOWFLAKE_WAREHOUSE=FHIR_WH and
-- SNOWFLAKE_DATABASE=FHIR_ASSETS (README, "Switching to Snowflake").
--
-- The tests apply this file to the fakesnow emulator (fhir_assets_tests/snowflake_emulator.py):
-- a statement marked "emulator: skip" is one fakesnow cannot run (it has no roles, users,
-- grants or virtual warehouses), so it is checked on a real account only.

-- The role the pipeline runs as. It owns the tables it creates, so it needs no table grants.
-- emulator: skip (fakesnow has no roles)
CREATE ROLE IF NOT EXISTS FHIR_LOADER COMMENT = 'fhir-assets: lands FHIR, builds views, audits write-back';

-- Compute: the smallest size, suspended when idle (landing is one COPY and a few MERGEs per batch).
-- emulator: skip (fakesnow has no virtual warehouses)
CREATE WAREHOUSE IF NOT EXISTS FHIR_WH WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 AUTO_RESUME = TRUE INITIALLY_SUSPENDED = TRUE;

CREATE DATABASE IF NOT EXISTS FHIR_ASSETS;

-- Raw resources as landed (fhir_raw.<type>, _quarantine, <type>_history).
CREATE SCHEMA IF NOT EXISTS FHIR_ASSETS.FHIR_RAW;
-- SQL-on-FHIR views (fhir.<view>). The database is not called FHIR: a schema FHIR in a
-- database FHIR makes "FHIR.x" ambiguous in the emulator and hard to read everywhere.
CREATE SCHEMA IF NOT EXISTS FHIR_ASSETS.FHIR;
-- One row per write-back attempt (fhir_audit.writes).
CREATE SCHEMA IF NOT EXISTS FHIR_ASSETS.FHIR_AUDIT;
-- The write-back example's source table.
CREATE SCHEMA IF NOT EXISTS FHIR_ASSETS.FHIR_WRITEBACK;

-- An internal stage for files loaded by hand (PUT then COPY INTO). Landings use their own
-- temporary stage, which disappears with the session.
CREATE STAGE IF NOT EXISTS FHIR_ASSETS.FHIR_RAW.LANDING FILE_FORMAT = (TYPE = PARQUET);

-- Least privilege: use the warehouse and database, create tables (and temporary stages) in
-- the four schemas, read and write the manual stage, nothing else. CREATE SCHEMA on the
-- database is granted because the pipeline issues CREATE SCHEMA IF NOT EXISTS, which
-- Snowflake authorizes against the database even when the schema exists.
-- emulator: skip (fakesnow has no grants)
GRANT USAGE ON WAREHOUSE FHIR_WH TO ROLE FHIR_LOADER;
-- emulator: skip (fakesnow has no grants)
GRANT USAGE, CREATE SCHEMA ON DATABASE FHIR_ASSETS TO ROLE FHIR_LOADER;
-- emulator: skip (fakesnow has no grants)
GRANT USAGE, CREATE TABLE, CREATE STAGE ON SCHEMA FHIR_ASSETS.FHIR_RAW TO ROLE FHIR_LOADER;
-- emulator: skip (fakesnow has no grants)
GRANT USAGE, CREATE TABLE ON SCHEMA FHIR_ASSETS.FHIR TO ROLE FHIR_LOADER;
-- emulator: skip (fakesnow has no grants)
GRANT USAGE, CREATE TABLE ON SCHEMA FHIR_ASSETS.FHIR_AUDIT TO ROLE FHIR_LOADER;
-- emulator: skip (fakesnow has no grants)
GRANT USAGE, CREATE TABLE ON SCHEMA FHIR_ASSETS.FHIR_WRITEBACK TO ROLE FHIR_LOADER;
-- emulator: skip (fakesnow has no grants)
GRANT READ, WRITE ON STAGE FHIR_ASSETS.FHIR_RAW.LANDING TO ROLE FHIR_LOADER;

-- The service user: key-pair auth only (TYPE = SERVICE users cannot have a password).
-- Generate the key:  openssl genrsa 2048 | openssl pkcs8 -topk8 -v2 aes256 -out fhir_service.p8
--                    openssl rsa -in fhir_service.p8 -pubout -out fhir_service.pub
-- and paste the public key's base64 body (without the BEGIN/END lines) below.
-- emulator: skip (fakesnow has no users)
CREATE USER IF NOT EXISTS FHIR_SERVICE TYPE = SERVICE DEFAULT_ROLE = FHIR_LOADER DEFAULT_WAREHOUSE = FHIR_WH DEFAULT_NAMESPACE = FHIR_ASSETS.FHIR_RAW RSA_PUBLIC_KEY = 'PASTE_THE_PUBLIC_KEY_BODY_HERE';
-- emulator: skip (fakesnow has no grants)
GRANT ROLE FHIR_LOADER TO USER FHIR_SERVICE;
