// Findings of the synthetic benchmark's version 2 that only local views at the cache's resolution can see (see
// src/data/synth/local-findings.ts). They are not CT-RATE columns: a version-2 label set is CT-RATE's 18 labels
// first, unchanged and in their order, then these, so that every consumer indexing the first 18 columns reads the
// same labels in either version.

export const LOCAL_FINDING_LABELS = ['Micronodules', 'Fine reticulation', 'Tree-in-bud'] as const;
export type LocalFindingLabel = (typeof LOCAL_FINDING_LABELS)[number];
