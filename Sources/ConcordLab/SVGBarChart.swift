import Foundation

/// A grouped bar chart as inline SVG (no scripts, no external files), for report.html.
struct SVGBarChart {
    var title: String
    var unit: String
    /// One group of bars per category (a strategy).
    var categories: [String]
    /// One bar per series (a phase, or a kind of bytes) in every group.
    var series: [(name: String, values: [Double])]

    private static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"]

    func render() -> String {
        let width = 900.0
        let height = 320.0
        let left = 60.0
        let bottom = 70.0
        let top = 40.0
        let plotHeight = height - bottom - top
        let plotWidth = width - left - 20
        let maximum = max(series.flatMap(\.values).max() ?? 0, 1e-9)
        let groupWidth = plotWidth / Double(max(categories.count, 1))
        let barWidth = groupWidth * 0.8 / Double(max(series.count, 1))
        var svg = """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 \(Int(width)) \(Int(height))" width="100%" role="img" aria-label="\(escape(title))">
            <text x="\(left)" y="22" font-size="15" font-weight="bold">\(escape(title))</text>
            <line x1="\(left)" y1="\(top + plotHeight)" x2="\(left + plotWidth)" y2="\(top + plotHeight)" stroke="#333"/>

            """
        for tick in 0...4 {
            let value = maximum * Double(tick) / 4
            let y = top + plotHeight - plotHeight * Double(tick) / 4
            svg += "<line x1=\"\(left)\" y1=\"\(f(y))\" x2=\"\(left + plotWidth)\" y2=\"\(f(y))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(f(y + 4))\" font-size=\"11\" text-anchor=\"end\">\(label(value))</text>\n"
        }
        for (group, category) in categories.enumerated() {
            let groupLeft = left + groupWidth * Double(group) + groupWidth * 0.1
            for (index, serie) in series.enumerated() where group < serie.values.count {
                let value = serie.values[group]
                let barHeight = plotHeight * value / maximum
                let x = groupLeft + barWidth * Double(index)
                svg += "<rect x=\"\(f(x))\" y=\"\(f(top + plotHeight - barHeight))\" width=\"\(f(barWidth * 0.92))\" "
                svg += "height=\"\(f(barHeight))\" fill=\"\(Self.palette[index % Self.palette.count])\">"
                svg += "<title>\(escape(category)) · \(escape(serie.name)): \(label(value)) \(escape(unit))</title></rect>\n"
            }
            svg += "<text x=\"\(f(groupLeft + groupWidth * 0.4))\" y=\"\(f(top + plotHeight + 16))\" font-size=\"12\" "
            svg += "text-anchor=\"middle\">\(escape(category))</text>\n"
        }
        var legendX = left
        for (index, serie) in series.enumerated() where series.count > 1 {
            svg += "<rect x=\"\(f(legendX))\" y=\"\(f(height - 26))\" width=\"12\" height=\"12\" fill=\"\(Self.palette[index % Self.palette.count])\"/>"
            svg += "<text x=\"\(f(legendX + 16))\" y=\"\(f(height - 16))\" font-size=\"12\">\(escape(serie.name))</text>\n"
            legendX += 24 + Double(serie.name.count) * 7
        }
        svg += "<text x=\"\(f(width - 20))\" y=\"22\" font-size=\"12\" text-anchor=\"end\">\(escape(unit))</text>\n</svg>"
        return svg
    }

    private func f(_ value: Double) -> String { String(format: "%.1f", value) }

    private func label(_ value: Double) -> String {
        value >= 100 ? String(format: "%.0f", value) : value >= 10 ? String(format: "%.1f", value) : String(format: "%.2f", value)
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
