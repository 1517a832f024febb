-- The legacy monolith's schema as LEGACY.md §1 describes it: the SQLAlchemy models plus the
-- era-1 columns and tables create_all() never dropped (both job-schema eras in one database).
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TYPE job_type AS ENUM ('command', 'script', 'file_transfer', 'composite');
CREATE TYPE job_status AS ENUM ('draft', 'scheduled', 'running', 'completed', 'failed', 'cancelled', 'deleted');
CREATE TYPE execution_status AS ENUM ('scheduled', 'running', 'completed', 'failed', 'cancelled');
CREATE TYPE action_type AS ENUM ('command', 'script', 'file_transfer');
CREATE TYPE logphase AS ENUM ('creation', 'target_selection', 'authentication', 'communication', 'action_execution', 'result_collection', 'completion');
CREATE TYPE loglevel AS ENUM ('info', 'warning', 'error', 'debug');
CREATE TYPE logcategory AS ENUM ('authentication', 'communication', 'command_execution', 'file_transfer', 'system');
CREATE TYPE execution_status_schedule AS ENUM ('scheduled', 'running', 'completed', 'failed', 'skipped');

CREATE TABLE users (
  id SERIAL PRIMARY KEY, username varchar(50) UNIQUE NOT NULL, email varchar(100) UNIQUE NOT NULL,
  password_hash varchar(255) NOT NULL, role varchar(20) NOT NULL DEFAULT 'user', is_active bool DEFAULT true,
  last_login timestamptz, created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
CREATE TABLE user_sessions (
  id SERIAL PRIMARY KEY, user_id int, session_token varchar(255) UNIQUE, ip_address varchar(45),
  user_agent text, created_at timestamptz DEFAULT now(), expires_at timestamptz NOT NULL, last_activity timestamptz);
CREATE TABLE system_settings (
  id SERIAL PRIMARY KEY, setting_key varchar(100) UNIQUE, setting_value jsonb, description text,
  updated_at timestamptz DEFAULT now());

CREATE TABLE universal_targets (
  id SERIAL PRIMARY KEY, target_uuid uuid UNIQUE NOT NULL DEFAULT gen_random_uuid(),
  target_serial varchar(20) UNIQUE NOT NULL, name varchar(100) NOT NULL,
  target_type varchar(20) NOT NULL DEFAULT 'system', description text, os_type varchar(20) NOT NULL,
  environment varchar(20) NOT NULL DEFAULT 'development', location varchar(100), data_center varchar(100),
  region varchar(100), is_active bool DEFAULT true, status varchar(20) NOT NULL DEFAULT 'active',
  health_status varchar(20) NOT NULL DEFAULT 'unknown', created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
CREATE TABLE target_communication_methods (
  id SERIAL PRIMARY KEY, target_id int NOT NULL REFERENCES universal_targets(id), method_type varchar(50) NOT NULL,
  method_name varchar(100) NOT NULL, is_primary bool DEFAULT false, is_active bool NOT NULL DEFAULT true,
  priority int DEFAULT 1, config jsonb NOT NULL, created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
CREATE TABLE target_credentials (
  id SERIAL PRIMARY KEY, communication_method_id int NOT NULL REFERENCES target_communication_methods(id),
  credential_type varchar(50) NOT NULL, credential_name varchar(100) NOT NULL, is_primary bool DEFAULT false,
  is_active bool DEFAULT true, encrypted_credentials text NOT NULL, created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now());

CREATE TABLE jobs (
  id SERIAL PRIMARY KEY, name varchar(255) NOT NULL, description text, job_type job_type NOT NULL DEFAULT 'command',
  status job_status NOT NULL DEFAULT 'draft', created_by int NOT NULL REFERENCES users(id),
  created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now(), scheduled_at timestamptz,
  started_at timestamptz, completed_at timestamptz, priority int NOT NULL DEFAULT 5, timeout int,
  retry_count int NOT NULL DEFAULT 0, is_deleted bool NOT NULL DEFAULT false, deleted_at timestamptz,
  job_uuid uuid UNIQUE NOT NULL DEFAULT gen_random_uuid(), job_serial varchar(20) UNIQUE);
CREATE TABLE job_actions (
  id SERIAL PRIMARY KEY, job_id int NOT NULL REFERENCES jobs(id), action_order int NOT NULL,
  action_type action_type NOT NULL, action_name varchar(255) NOT NULL, action_parameters json,
  action_config json, created_at timestamptz DEFAULT now());
CREATE TABLE job_targets (
  id SERIAL PRIMARY KEY, job_id int NOT NULL REFERENCES jobs(id), target_id int NOT NULL REFERENCES universal_targets(id),
  created_at timestamptz DEFAULT now());
CREATE TABLE job_executions (
  id SERIAL PRIMARY KEY, job_id int NOT NULL REFERENCES jobs(id), execution_number int NOT NULL,
  status execution_status NOT NULL DEFAULT 'scheduled', scheduled_at timestamptz, started_at timestamptz,
  completed_at timestamptz, total_targets int NOT NULL DEFAULT 0, successful_targets int NOT NULL DEFAULT 0,
  failed_targets int NOT NULL DEFAULT 0, created_at timestamptz DEFAULT now(),
  execution_uuid uuid NOT NULL DEFAULT gen_random_uuid(), execution_serial varchar(50));
CREATE TABLE job_execution_results (
  id SERIAL PRIMARY KEY, execution_id int NOT NULL REFERENCES job_executions(id),
  target_id int NOT NULL REFERENCES universal_targets(id), target_name varchar(255) NOT NULL,
  action_id int NOT NULL REFERENCES job_actions(id), action_order int NOT NULL, action_name varchar(255) NOT NULL,
  action_type action_type NOT NULL, status execution_status NOT NULL DEFAULT 'scheduled',
  started_at timestamptz, completed_at timestamptz, execution_time_ms int, output_text text, error_text text,
  exit_code int, command_executed text, created_at timestamptz DEFAULT now());
CREATE TABLE job_execution_branches (
  id SERIAL PRIMARY KEY, job_execution_id int REFERENCES job_executions(id), target_id int REFERENCES universal_targets(id),
  branch_uuid uuid UNIQUE DEFAULT gen_random_uuid(), branch_serial varchar(100) UNIQUE, branch_id varchar(10),
  target_serial_ref varchar(50), status execution_status, scheduled_at timestamptz, started_at timestamptz,
  completed_at timestamptz, result_output text, result_error text, exit_code int, created_at timestamptz DEFAULT now());
CREATE TABLE job_action_results (
  id SERIAL PRIMARY KEY, branch_id int REFERENCES job_execution_branches(id), action_id int REFERENCES job_actions(id),
  action_serial varchar(100) UNIQUE, action_order int, action_name varchar(255), action_type action_type,
  status execution_status, started_at timestamptz, completed_at timestamptz, execution_time_ms int,
  result_output text, result_error text, exit_code int, command_executed text, created_at timestamptz DEFAULT now());
CREATE TABLE job_execution_logs (
  id SERIAL PRIMARY KEY, job_execution_id int REFERENCES job_executions(id),
  branch_id int REFERENCES job_execution_branches(id), log_phase logphase, log_level loglevel DEFAULT 'info',
  log_category logcategory, log_message text, log_details json, timestamp timestamptz, created_at timestamptz DEFAULT now());

CREATE TABLE job_schedules (
  id SERIAL PRIMARY KEY, schedule_uuid uuid UNIQUE DEFAULT gen_random_uuid(), job_id int NOT NULL REFERENCES jobs(id),
  schedule_type varchar(20) NOT NULL, enabled bool DEFAULT true, execute_at timestamptz, recurring_type varchar(20),
  interval int DEFAULT 1, time varchar(8), days_of_week varchar(20), day_of_month int, cron_expression varchar(100),
  timezone varchar(50) DEFAULT 'UTC', max_executions int, execution_count int DEFAULT 0, end_date timestamptz,
  description text, next_run timestamptz, last_run timestamptz, created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now());
CREATE TABLE schedule_executions (
  id SERIAL PRIMARY KEY, execution_uuid uuid DEFAULT gen_random_uuid(), execution_serial varchar(50),
  job_schedule_id int NOT NULL REFERENCES job_schedules(id), job_execution_id int REFERENCES job_executions(id),
  scheduled_at timestamptz NOT NULL, started_at timestamptz, completed_at timestamptz,
  status execution_status_schedule, result_summary text, error_message text, execution_context jsonb,
  created_at timestamptz DEFAULT now());

CREATE TABLE notification_templates (
  id SERIAL PRIMARY KEY, name varchar(100) UNIQUE, subject_template varchar(200) NOT NULL, body_template text NOT NULL,
  template_type varchar(50) DEFAULT 'email', is_active bool DEFAULT true, description text,
  created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
CREATE TABLE alert_rules (
  id SERIAL PRIMARY KEY, name varchar(100), description varchar(500), metric_type varchar(50), condition varchar(20),
  threshold_value float, evaluation_period int DEFAULT 5, is_active int DEFAULT 1, severity varchar(20),
  notification_channels jsonb, last_triggered timestamptz, trigger_count int DEFAULT 0,
  created_at timestamptz DEFAULT now(), updated_at timestamptz DEFAULT now());
CREATE TABLE device_types (
  id SERIAL PRIMARY KEY, value varchar(100) UNIQUE, label varchar(100), category varchar(50), description text,
  communication_methods json, is_system bool DEFAULT false, is_active bool DEFAULT true);
CREATE TABLE discovery_jobs (
  id SERIAL PRIMARY KEY, name varchar(100), network_ranges json, status varchar(20) DEFAULT 'pending',
  progress float DEFAULT 0, devices_discovered int DEFAULT 0, created_at timestamptz DEFAULT now());
CREATE TABLE discovered_devices (
  id SERIAL PRIMARY KEY, discovery_job_id int REFERENCES discovery_jobs(id), ip_address varchar(45), hostname varchar(255),
  open_ports json, device_type varchar(50), confidence_score float, status varchar(20) DEFAULT 'discovered',
  target_id int REFERENCES universal_targets(id), discovered_at timestamptz DEFAULT now());
