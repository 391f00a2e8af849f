extension String {
    /// The name as a double-quoted SQL identifier (embedded quotes doubled), safe to splice into SQL text.
    var quotedSQLIdentifier: String {
        "\"" + replacing("\"", with: "\"\"") + "\""
    }
}
