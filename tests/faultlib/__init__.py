"""Fault injection for tests and the soak (issue 8): sequence-numbered nodes (:mod:`.nodes`),
judging what each link delivered (:mod:`.check`), injectors and the orphan check
(:mod:`.inject`), and the scenarios both run (:mod:`.scenarios`)."""
