from gateway.adapters.orm import metadata
from kit.migrations import run_env

run_env(metadata, schema="identity")
