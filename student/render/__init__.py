"""Volume rendering of tri-planes: rays, plane lookup, stratified + importance sampling, compositing."""
