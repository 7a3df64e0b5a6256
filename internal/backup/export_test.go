package backup

// StripPassword is exported for tests.
var StripPassword = stripPassword
