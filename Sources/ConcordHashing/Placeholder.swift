public enum ConcordHashingPlaceholder {}
