"""The job-container contract, as named constants (standard library only).

One place for every path, environment variable and reserved name that the client side
(ssm_rules: requests, executor, local backend) and the job side (launcher, WorkerConfig)
must agree on. SageMaker's own names follow the sagemaker-training-toolkit
(``sagemaker_training/params.py``, ``environment.py``); ``SSM_*`` names are ours and
come from simple-sagemaker's worker table.
"""

from __future__ import annotations

# --- The /opt/ml layout of a SageMaker training container -------------------------------
OPT_ML = "/opt/ml"
INPUT_DIR = f"{OPT_ML}/input"
INPUT_CONFIG_DIR = f"{INPUT_DIR}/config"
INPUT_DATA_DIR = f"{INPUT_DIR}/data"  # one sub-directory per channel
HYPERPARAMETERS_FILE = f"{INPUT_CONFIG_DIR}/hyperparameters.json"
RESOURCE_CONFIG_FILE = f"{INPUT_CONFIG_DIR}/resourceconfig.json"
INPUT_DATA_CONFIG_FILE = f"{INPUT_CONFIG_DIR}/inputdataconfig.json"
MODEL_DIR = f"{OPT_ML}/model"
OUTPUT_DIR = f"{OPT_ML}/output"
OUTPUT_DATA_DIR = f"{OUTPUT_DIR}/data"
FAILURE_FILE = f"{OUTPUT_DIR}/failure"
CODE_DIR = f"{OPT_ML}/code"
CHECKPOINT_DIR = f"{OPT_ML}/checkpoints"  # CheckpointConfig.LocalPath default
TENSORBOARD_DIR = f"{OUTPUT_DIR}/tensorboard"
# Plain file outputs of a rule are written here by the job; on success the launcher of the
# main host moves them into OUTPUT_DATA_DIR/SSM_FILES_MEMBER so that they travel inside
# output.tar.gz (the only other thing a training job uploads besides model.tar.gz).
FILES_DIR = f"{OUTPUT_DIR}/ssm_files"
SSM_FILES_MEMBER = ".ssm_files"

# FailureReason is the first 1024 characters of the failure file (training toolkit).
FAILURE_REASON_MAX = 1024

# --- The /opt/ml layout of a SageMaker processing container -----------------------------
PROCESSING_DIR = f"{OPT_ML}/processing"
PROCESSING_CONFIG_FILE = f"{OPT_ML}/config/processingjobconfig.json"
PROCESSING_RESOURCE_CONFIG_FILE = f"{OPT_ML}/config/resourceconfig.json"
PROCESSING_INPUT_DIR = f"{PROCESSING_DIR}/input"  # + /<input name>
PROCESSING_CODE_DIR = f"{PROCESSING_INPUT_DIR}/code"  # holds sourcedir.tar.gz
PROCESSING_TASK_DIR = f"{PROCESSING_INPUT_DIR}/ssm_task"  # holds task.json
PROCESSING_MODEL_DIR = f"{PROCESSING_DIR}/model"
PROCESSING_OUTPUT_DATA_DIR = f"{PROCESSING_DIR}/output"
PROCESSING_STATE_DIR = f"{PROCESSING_DIR}/state"
PROCESSING_FILES_DIR = f"{PROCESSING_DIR}/ssm_files"
# Everything the processing launcher leaves for upload: model.tar.gz, output.tar.gz, files/
PROCESSING_CARRIER_DIR = f"{PROCESSING_DIR}/ssm_out"
# Sub-directory of the carrier holding the plain outputs: <carrier>/files/<relpath>.
PROCESSING_CARRIER_FILES = "files"
PROCESSING_WORK_DIR = f"{PROCESSING_DIR}/work"  # unpacked code, cwd of the user program

# Reserved ProcessingInput / ProcessingOutput names (users' channels may not take them).
PROCESSING_CODE_INPUT = "code"
PROCESSING_TASK_INPUT = "ssm_task"
PROCESSING_STATE_INPUT = "ssm_state"
PROCESSING_CARRIER_OUTPUT = "ssm_out"
PROCESSING_STATE_OUTPUT = "ssm_state"

CODE_BUNDLE_NAME = "sourcedir.tar.gz"
TASK_FILE_NAME = "task.json"
MODEL_ARCHIVE = "model.tar.gz"
OUTPUT_ARCHIVE = "output.tar.gz"
LAUNCHER_PROGRAM = "ssm_launch.py"  # at the root of every code bundle

# --- Hyperparameters ---------------------------------------------------------------------
# Script mode on framework images (sagemaker-training-toolkit): values are JSON-encoded.
HP_PROGRAM = "sagemaker_program"
HP_SUBMIT_DIRECTORY = "sagemaker_submit_directory"
HP_REGION = "sagemaker_region"
HP_CONTAINER_LOG_LEVEL = "sagemaker_container_log_level"
HP_TASK = "ssm_task"  # JSON-encoded task description (task.py), training jobs only
RESERVED_HP_PREFIXES = ("sagemaker_", "ssm_")

# --- Environment ---------------------------------------------------------------------------
ENV_JOB_NAME = "SAGEMAKER_JOB_NAME"  # TRAINING_JOB_NAME on SageMaker; both are set
ENV_TRAINING_JOB_NAME = "TRAINING_JOB_NAME"
ENV_PROCESSING_JOB_NAME = "PROCESSING_JOB_NAME"
ENV_CHANNELS = "SM_CHANNELS"
ENV_CHANNEL_PREFIX = "SM_CHANNEL_"
ENV_HPS = "SM_HPS"
ENV_MODEL_DIR = "SM_MODEL_DIR"
ENV_OUTPUT_DATA_DIR = "SM_OUTPUT_DATA_DIR"
ENV_OUTPUT_DIR = "SM_OUTPUT_DIR"
ENV_INPUT_DIR = "SM_INPUT_DIR"
ENV_INPUT_CONFIG_DIR = "SM_INPUT_CONFIG_DIR"
ENV_NUM_CPUS = "SM_NUM_CPUS"
ENV_NUM_GPUS = "SM_NUM_GPUS"
ENV_CURRENT_HOST = "SM_CURRENT_HOST"
ENV_HOSTS = "SM_HOSTS"
ENV_NETWORK_INTERFACE_NAME = "SM_NETWORK_INTERFACE_NAME"
ENV_MODULE_DIR = "SM_MODULE_DIR"
ENV_USER_ENTRY_POINT = "SM_USER_ENTRY_POINT"
ENV_USER_ARGS = "SM_USER_ARGS"
ENV_MODULE_NAME = "SM_MODULE_NAME"
ENV_TRAINING_ENV = "SM_TRAINING_ENV"
ENV_RESOURCE_CONFIG = "SM_RESOURCE_CONFIG"
ENV_INPUT_DATA_CONFIG = "SM_INPUT_DATA_CONFIG"
ENV_CURRENT_INSTANCE_TYPE = "SM_CURRENT_INSTANCE_TYPE"
ENV_LOG_LEVEL = "SM_LOG_LEVEL"
# simple-sagemaker's own variables (set by our launcher)
ENV_STATE = "SSM_STATE"
ENV_INSTANCE_STATE = "SSM_INSTANCE_STATE"
# simple-sagemaker set SSM_OUTPUT in processing jobs (its EndOfJob output directory); ours is
# SM_OUTPUT_DATA_DIR, in training and processing jobs alike.
ENV_OUTPUT = "SSM_OUTPUT"
ENV_TENSORBOARD_DIR = "SSM_TENSORBOARD_DIR"
ENV_NUM_NODES = "SSM_NUM_NODES"
ENV_HOST_RANK = "SSM_HOST_RANK"
# Set only by the local backend when it cannot mount the sandbox at /opt/ml: the real
# directory that stands for /opt/ml. The launcher re-roots every /opt/ml path onto it.
ENV_OPT_ML_ROOT = "SSM_OPT_ML_ROOT"
# Seconds between SIGTERM and SIGKILL that the job gets to save its state.
STOP_GRACE_SECONDS = 120  # StopTrainingJob: SIGTERM, then a 120-second window before SIGKILL

# --- Task description (what the launcher runs) --------------------------------------------
# Its fields, version and JSON form: worker_toolkit/task.py (TaskDescription).
# <NAME> is the name upper-cased, every character other than A-Z/0-9 replaced by "_".
ENV_INPUT_PREFIX = "SSM_INPUT_"
ENV_OUTPUT_PREFIX = "SSM_OUTPUT_"
TASK_KINDS = ("script", "shell")
JOB_TYPES = ("training", "processing")

# --- Inputs that arrive unpacked (``unpacked(model(...))``) ---------------------------------
# The launcher extracts such a channel's tarball here (one sub-directory per channel) before
# the program starts and points SM_CHANNEL_<NAME> / SSM_INPUT_<NAME> at it.
UNPACKED_DIR = f"{INPUT_DIR}/unpacked"
PROCESSING_UNPACKED_DIR = f"{PROCESSING_DIR}/unpacked"
