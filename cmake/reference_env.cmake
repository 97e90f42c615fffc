# The test references' Python environment and shared test data, for tests/ and bench/.
#   UPCYCLE_PYTHON            interpreter of the pinned reference venv that scripts/setup builds
#                             (torch, transformers, tokenizers, tensorboard, gguf, mergekit; PyPI)
#   UPCYCLE_SHARED_DATA_DIR   ../shared/data beside the checkout (real tokenizer files, read in place)
# Both are checked here, at configure time: a missing one is an error naming the command that makes
# it, never a test that skips itself later.
if(DEFINED ENV{UPCYCLE_VENV})
  set(upcycle_default_venv "$ENV{UPCYCLE_VENV}")
else()
  set(upcycle_default_venv "$ENV{HOME}/.cache/upcycle/venv")
endif()
set(UPCYCLE_PYTHON "${upcycle_default_venv}/bin/python" CACHE FILEPATH
    "Python of the reference environment (scripts/setup builds it; default \$UPCYCLE_VENV or ~/.cache/upcycle/venv)")
# scripts/device-check builds only the GPU checks (label gpu), which use neither the venv nor the shared
# data, on a machine that has neither: UPCYCLE_SKIP_REFERENCE_CHECKS=ON skips both checks below.
option(UPCYCLE_SKIP_REFERENCE_CHECKS "Skip the reference venv and shared data checks (scripts/device-check)" OFF)
get_filename_component(upcycle_default_shared "${PROJECT_SOURCE_DIR}/../shared/data" ABSOLUTE)
set(UPCYCLE_SHARED_DATA_DIR "${upcycle_default_shared}" CACHE PATH "The project's shared test data (real tokenizer files)")
if(UPCYCLE_SKIP_REFERENCE_CHECKS)
  return()
endif()
if(NOT EXISTS "${UPCYCLE_PYTHON}")
  message(FATAL_ERROR "The reference Python environment is missing (${UPCYCLE_PYTHON}): run scripts/setup, "
                      "which builds it from tests/reference/requirements.txt, or pass -DUPCYCLE_PYTHON=/path/to/python")
endif()
# The environment scripts/setup manages must match today's requirements (its stamp is written last);
# an interpreter passed by hand is the user's to keep in step.
if(UPCYCLE_PYTHON STREQUAL "${upcycle_default_venv}/bin/python")
  set(upcycle_stamp "${upcycle_default_venv}/.requirements.sha256")
  file(SHA256 "${PROJECT_SOURCE_DIR}/tests/reference/requirements.txt" upcycle_requirements_sha)
  if(EXISTS "${upcycle_stamp}")
    file(READ "${upcycle_stamp}" upcycle_venv_sha)
    string(STRIP "${upcycle_venv_sha}" upcycle_venv_sha)
  endif()
  if(NOT upcycle_venv_sha STREQUAL upcycle_requirements_sha)
    message(FATAL_ERROR "The reference Python environment at ${upcycle_default_venv} is incomplete or was built from "
                        "another tests/reference/requirements.txt: run scripts/setup to rebuild it")
  endif()
endif()
# Re-run this check when the requirements change.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/tests/reference/requirements.txt")

if(NOT EXISTS "${UPCYCLE_SHARED_DATA_DIR}/tokenizers/llama3/tokenizer.json")
  message(FATAL_ERROR "Shared test data not found: ${UPCYCLE_SHARED_DATA_DIR}/tokenizers/llama3/tokenizer.json "
                      "(the checkout's sibling ../shared/data; or pass -DUPCYCLE_SHARED_DATA_DIR=...)")
endif()
