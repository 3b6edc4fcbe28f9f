#!/usr/bin/env bash
# The powered ablation of issue 16 (docs/ablation.md): the U-Net trained for the same number of
# steps and seeds on the source songs with online remixing (the peers' baseline) and on msaug
# renders, each scored on 30 held-out demo songs (whole-song uSDR), then `mstrain compare`.
# Everything runs at the U-Net's 16 kHz: the demo songs are composed at that rate, so no
# variant pays for resampling and Rubber Band works on a third of the samples.
#
#   bash scripts/ablation.sh                       # everything, into $WORK (default /work/ablation)
#   VARIANTS="songs default hybrid noeffects" SEEDS="0 1 2" bash scripts/ablation.sh
#
# Resumable: data, renders and runs that exist are kept, a run whose eval exists is skipped, a
# run folder without an eval is trained again from scratch. Every heavy command runs under nice.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/work/ablation}            # all generated data; outside the repository
PY=${PY:-$REPO/.venv/bin/python}        # `python -m augment` is msaug, `python -m train` mstrain
NICE=${NICE:-10}
TRACKS=${TRACKS:-120}                   # demo songs; the last quarter (30) is the scored test set
SONG_SECONDS=${SONG_SECONDS:-10}        # length of every song, training and test
SR=${SR:-16000}                         # the U-Net's rate, for songs, renders and test songs
EVAL_ARGS=${EVAL_ARGS:---usdr-only}     # "" adds museval's cSDR (minutes per eval, not seconds)
N=${N:-300}                             # rendered items per render
ITEM_SECONDS=${ITEM_SECONDS:-6}         # item length (> the U-Net's 5 s crops)
VALID_COUNT=${VALID_COUNT:-10}          # real songs held out of the renders for validation
RENDER_JOBS=${RENDER_JOBS:-2}           # render and demo-data workers
EPOCHS=${EPOCHS:-8}
BATCHES=${BATCHES:-100}                 # batches per epoch: steps = EPOCHS x BATCHES
SEGMENT=${SEGMENT:-5}                   # crop seconds (the U-Net's recipe: 5)
THREADS=${THREADS:-1}                   # torch threads per run; JOBS x THREADS <= cores
BATCH=${BATCH:-4}
PATIENCE=${PATIENCE:-1000}              # never stops early: every run makes all its steps
WORKERS=${WORKERS:-1}                   # data loader workers
SEEDS=${SEEDS:-"0 1 2"}
VARIANTS=${VARIANTS:-"songs default hybrid noeffects noreverb coherent"}
JOBS=${JOBS:-2}                         # runs (train, then eval) side by side, all niced
MODEL_ARGS=${MODEL_ARGS:-}              # e.g. "widths=[4,8,16] bottleneck=32"
ONLINE="--remix --online-gain 0.25 1.25 --channel-swap --polarity-flip"   # the peers' recipe
NOREVERB_WHERE=${NOREVERB_WHERE:-"not vocals_reverb_applied"}

run() { nice -n "$NICE" "$PY" "$@"; }
log() { echo "[$(date +%T)] $*"; }
mkdir -p "$WORK"
cd "$WORK"

# 1. Sources: sources/train (training and validation songs) and sources/test (the scored songs,
#    never trained on or validated on), at the model's rate.
[ -f sources/.done ] || { run -m augment demo-data sources --tracks "$TRACKS" \
    --seconds "$SONG_SECONDS" --sr "$SR" --seed 0 --jobs "$RENDER_JOBS" && touch sources/.done; }

# 2. Renders: same --n, --seconds, --seed and --valid-count, so the same validation songs.
cat > noeffects.toml <<'EOF'
# every default effect off: the items are remixes of the source stems (incoherent), no DSP
[effects.pitch_shift]
p = 0
[effects.time_stretch]
p = 0
[effects.compressor]
p = 0
[effects.reverb]
p = 0
EOF
render() {  # OUT MODE [extra args]
    local out=$1 mode=$2
    shift 2
    [ -f "$out/.done" ] && return
    log "render $out"
    run -m augment render --root sources --out "$out" --mode "$mode" --n "$N" \
        --seconds "$ITEM_SECONDS" --sr "$SR" --seed 0 --jobs "$RENDER_JOBS" --valid-count "$VALID_COUNT" --quiet "$@"
    touch "$out/.done"
}
render r-default incoherent
case " $VARIANTS " in *" noeffects "*) render r-noeffects incoherent --config noeffects.toml ;; esac
case " $VARIANTS " in *" coherent "*) render r-coherent coherent ;; esac

# 3. The source songs as a MUSDB18-HQ root without the renders' validation songs (hard links),
#    and those songs as a root of their own: every variant validates on the same real songs.
if [ ! -f songs/.done ]; then
    rm -rf songs valid
    mkdir -p songs/train valid/test
    "$PY" -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))['identity']['settings']['valid_tracks']))" \
        r-default/dataset.json > valid-songs.txt
    for d in sources/train/*/; do
        name=$(basename "$d")
        if grep -qxF "$name" valid-songs.txt; then cp -al "$d" "valid/test/$name"
        else cp -al "$d" "songs/train/$name"; fi
    done
    touch songs/.done
fi

# 4-5. Each run: train (the same steps, batch, lr schedule and validation for every run), then
#      museval on the 30 test songs. JOBS runs side by side; a run's lock (flock, released when
#      its process ends) keeps two lanes off one run.
args_of() {  # VARIANT -> the data arguments
    case $1 in
        songs) echo "--data songs $ONLINE" ;;
        default) echo "--data r-default" ;;
        hybrid) echo "--data r-default $ONLINE" ;;
        noeffects) echo "--data r-noeffects" ;;
        coherent) echo "--data r-coherent" ;;
        noreverb) echo "--data r-default" ;;   # + --where "$NOREVERB_WHERE"
        *) echo "unknown variant $1" >&2; exit 2 ;;
    esac
}
one() {  # RUN (VARIANT-sSEED)
    local name=$1 v=${1%-s*} seed=${1##*-s} out=runs/$1
    exec 9> "runs/$name.lock"
    flock 9
    [ -f "$out/eval-test/summary.csv" ] && return
    if [ ! -f "$out/.trained" ]; then
        rm -rf "$out"
        local where=() model_args=()
        [ "$v" = noreverb ] && where=(--where "$NOREVERB_WHERE")
        for a in $MODEL_ARGS; do model_args+=(--model-arg "$a"); done
        echo "[$(date +%T)] train $out"
        # shellcheck disable=SC2046
        nice -n "$NICE" "$PY" -m train train $(args_of "$v") "${where[@]}" "${model_args[@]}" \
            --model unet --valid-root valid --valid-subset test --epochs "$EPOCHS" \
            --batches-per-epoch "$BATCHES" --batch-size "$BATCH" --patience "$PATIENCE" \
            --segment "$SEGMENT" --workers "$WORKERS" --seed "$seed" --out "$out" > "runs/$name.log" 2>&1
        touch "$out/.trained"
    fi
    rm -rf "$out/eval-test"
    echo "[$(date +%T)] eval $out"
    nice -n "$NICE" "$PY" -m train eval --run "$out" --root sources --subset test \
        $EVAL_ARGS --out "$out/eval-test" > "runs/$name.eval.log" 2>&1
    echo "[$(date +%T)] done $out"
}
export -f one args_of
export PY NICE ONLINE NOREVERB_WHERE MODEL_ARGS EPOCHS BATCHES BATCH PATIENCE WORKERS SEGMENT \
    EVAL_ARGS
export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS   # torch's intra-op threads
mkdir -p runs
if [ -z "${RUNS:-}" ]; then
    RUNS=""
    for seed in $SEEDS; do for v in $VARIANTS; do RUNS="$RUNS $v-s$seed"; done; done
fi
printf '%s\n' $RUNS | xargs -P "$JOBS" -I{} bash -c 'set -euo pipefail; one "$1"' _ {}

# 6. Paired differences against the peers' baseline (the first label), 95% bootstrap CIs.
labels=()
for v in $VARIANTS; do
    dirs=""
    for seed in $SEEDS; do dirs="$dirs${dirs:+,}runs/$v-s$seed/eval-test"; done
    labels+=("$v=$dirs")
done
# Unpaired (each variant's seeds resampled on their own) and paired by seed (the k-th run of
# every variant shares its initialisation and draw stream).
run -m train compare "${labels[@]}" --out compare | tee compare.log
run -m train compare "${labels[@]}" --paired-seeds --out compare-paired | tee compare-paired.log
# 7. One row per run: mean uSDR over the test songs (per source and mean) and the validation
#    loss of its best epoch, to see the seeds' spread that the intervals summarise.
"$PY" - $VARIANTS -- $SEEDS > runs.md <<'PYEOF'
import csv
import json
import sys

args = sys.argv[1:]
variants, seeds = args[: args.index("--")], args[args.index("--") + 1 :]
print("| run | vocals | drums | bass | other | mean uSDR | best valid loss |")
print("|---|---:|---:|---:|---:|---:|---:|")
for v in variants:
    for s in seeds:
        run = f"runs/{v}-s{s}"
        scores = json.load(open(f"{run}/eval-test/per_track.json"))
        sources = list(next(iter(scores.values())))
        means = [sum(t[src]["usdr"] for t in scores.values()) / len(scores) for src in sources]
        best = min(float(r["valid_loss"]) for r in csv.DictReader(open(f"{run}/log.csv")))
        cells = " | ".join(f"{m:+.2f}" for m in means)
        print(f"| {v}-s{s} | {cells} | {sum(means) / len(means):+.2f} | {best:.5f} |")
PYEOF
cat runs.md
log "done: $WORK/compare{,-paired}/compare.md and compare.png, $WORK/runs.md"
