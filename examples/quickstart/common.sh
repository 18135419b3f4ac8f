# shellcheck shell=bash
# Helpers shared by the shell pipelines that train the models of models.sh
# (examples/quickstart/run.sh). Sourced.

# True when model $1 has landed: its MODEL_<name>_REQUIRES is empty (stock
# fairseq) or names a file that exists.
model_landed() {
  local requires="MODEL_${1}_REQUIRES"
  [ -z "${!requires}" ] || [ -e "${!requires}" ]
}

# Prints fairseq's progress lines only; the full log stays in train.log.
# sed -u: unbuffered, so progress shows as it happens (mawk would buffer).
show_progress() {
  sed -u -n -E '/train_inner|valid on|done training|Stopping training/ { s/^.*\| INFO \| /  /; p }'
}
