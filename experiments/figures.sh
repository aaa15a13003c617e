#!/bin/sh
# Regenerate every committed figure from the results of the sweeps in experiments/README.md.
# Usage: experiments/figures.sh RESULTS_ROOT   (RESULTS_ROOT/<grid name>/results.parquet;
# capacity_slopes.png from experiments/results/*.csv)
set -e
R=${1:?usage: experiments/figures.sh RESULTS_ROOT}
F=docs/figures
mkdir -p "$F"
cis plot "$R/capacity" --kind capacity --out "$F/capacity.png"
cis plot "$R/capacity_l2" --kind capacity --out "$F/capacity_l2.png"
cis plot "$R/depth" --kind depth --out "$F/depth.png"
cis plot "$R/depth" --kind layers --out "$F/depth_layers.png"
cis plot "$R/noise" --kind false-activation --out "$F/noise.png"
cis plot "$R/noise" --kind scatter --out "$F/scatter.png"
cis plot "$R/noise_capacity" --kind capacity --x bias --out "$F/noise_capacity.png"
cis plot "$R/design" --kind layers --out "$F/design.png"
cis plot "$R/readout" --kind layers --out "$F/readout.png"
cis plot "$R/readout" --kind terms --out "$F/readout_terms.png"
cis plot "$R/choice_of_s" --kind capacity --x S --out "$F/choice_of_s.png"
cis plot "$R/construction_capacity" --kind capacity --out "$F/construction_capacity.png"
# local capacity exponents: reads the committed tables in experiments/results (not RESULTS_ROOT)
python experiments/capacity_slopes.py --plot "$F/capacity_slopes.png"
